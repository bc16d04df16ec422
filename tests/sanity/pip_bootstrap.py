"""Offline stand-in for ansible-test's pip bootstrap script.

ansible-test creates each sanity virtualenv without pip and runs a `get-pip.py` that it
downloads from ci-files.testing.ansible.com, a host this project's machines cannot reach; it
first looks in ~/.ansible/test/cache/get_pip_<version>.py, and `make sanity` puts this file
there. It bootstraps pip from the interpreter's own ensurepip and then installs the pinned
pip (and whatever else ansible-test asked for) from PyPI, so the result is the same pip.
"""
import subprocess
import sys

subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
ARGS = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install', '--disable-pip-version-check'] + ARGS))
