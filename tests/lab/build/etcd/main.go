// Command etcd is the etcd server, built from the published etcd Go module
// so that the lab needs no prebuilt binary (see tests/lab/README.md).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
