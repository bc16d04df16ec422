"""The three contenders; each gives the command of its setup (also its rerun) and its teardown.

(a) ``collection``: playbooks/setup.yml and playbooks/teardown.yml of this collection, with an
    inventory of the lab clusters (meshlink_deploy_sample_apps: false) and forks at least the
    number of clusters (docs/environments.md).
(b) ``seed-kubectl``: benchmarks/contenders/seed_procedure.sh, kubectl commands looped per service.
(c) ``k8s-per-object``: benchmarks/contenders/users_setup.yml / users_teardown.yml, one
    kubernetes.core.k8s task per object from a Jinja2 template.
All three run with the repository's ansible.cfg and virtualenv, from the repository root.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

from .lab import KUBECTL_BIN, REPO, Lab
from .workloads import Workload

HERE = Path(__file__).resolve().parents[1] / "contenders"
BIN = Path(sys.executable).parent

Command = Tuple[List[str], Dict[str, str]]


def ansible_env() -> Dict[str, str]:
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"), "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def forks(workload: Workload) -> int:
    """Ansible forks for (a): its default 5, or the number of clusters when there are more, as
    docs/environments.md asks (with fewer, the clusters of a task run in batches)."""
    return max(5, len(workload.clusters))


class Contender:
    key = ""
    name = ""
    label = ""

    def __init__(self, lab: Lab, work: Path) -> None:
        self.lab = lab
        self.work = work

    def setup(self, workload: Workload) -> Command:
        raise NotImplementedError

    def teardown(self, workload: Workload) -> Command:
        raise NotImplementedError


class Collection(Contender):
    key, name, label = "a", "collection", "(a) meshlink setup.yml"

    def inventory(self, workload: Workload) -> Path:
        path = self.work / f"inventory-{workload.key}.yml"
        inv = {"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "meshlink_kubeconfig": str(self.lab.kubeconfig), "meshlink_deploy_sample_apps": False,
                     "meshlink_services": workload.services},
            "hosts": {c: {"meshlink_context": c} for c in workload.clusters},
        }}
        path.write_text(yaml.safe_dump(inv, sort_keys=False), encoding="utf-8")
        return path

    def _play(self, workload: Workload, playbook: str) -> Command:
        # docs/environments.md: forks at least the number of clusters (Ansible's default is 5)
        cmd = [str(BIN / "ansible-playbook"), "-i", str(self.inventory(workload)),
               "--forks", str(forks(workload)), str(REPO / "playbooks" / f"{playbook}.yml")]
        return cmd, ansible_env()

    def setup(self, workload: Workload) -> Command:
        return self._play(workload, "setup")

    def teardown(self, workload: Workload) -> Command:
        return self._play(workload, "teardown")


class SeedKubectl(Contender):
    key, name, label = "b", "seed-kubectl", "(b) seed procedure, kubectl loop"

    def _script(self, workload: Workload, mode: str) -> Command:
        pairs = self.work / f"pairs-{workload.key}.tsv"
        pairs.write_text(workload.pairs_tsv(), encoding="utf-8")
        env = {**os.environ, "KUBECTL": str(KUBECTL_BIN), "KUBECONFIG": str(self.lab.kubeconfig)}
        return ["bash", str(HERE / "seed_procedure.sh"), mode, str(pairs)], env

    def setup(self, workload: Workload) -> Command:
        return self._script(workload, "setup")

    def teardown(self, workload: Workload) -> Command:
        return self._script(workload, "teardown")


class K8sPerObject(Contender):
    key, name, label = "c", "k8s-per-object", "(c) kubernetes.core.k8s per object"

    def _play(self, workload: Workload, playbook: str) -> Command:
        extra = self.work / f"vars-{workload.key}.json"
        extra.write_text(json.dumps({"bench_kubeconfig": str(self.lab.kubeconfig), "bench_pairs": workload.pairs,
                                     "ansible_python_interpreter": sys.executable}), encoding="utf-8")
        cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"@{extra}", str(HERE / playbook)]
        return cmd, ansible_env()

    def setup(self, workload: Workload) -> Command:
        return self._play(workload, "users_setup.yml")

    def teardown(self, workload: Workload) -> Command:
        return self._play(workload, "users_teardown.yml")


ALL = (Collection, SeedKubectl, K8sPerObject)
