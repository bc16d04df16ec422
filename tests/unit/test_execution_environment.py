# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The execution environment definition (execution-environment.yml), the collection's own EE
metadata (meta/execution-environment.yml, requirements.txt, bindep.txt) and the split of
run-time and development requirements (requirements-dev.txt).

No image is built (no container engine is needed): ``ansible-builder create`` writes the
build context, and the tests read what a build would use. The galaxy and builder stages of
that build are then replayed offline on the context's own files: the collection tarball is
installed the way the galaxy stage installs it, and the context's ``introspect.py`` computes
the Python and system packages the final image would get.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
EE_FILE = os.path.join(REPO, 'execution-environment.yml')

pytest.importorskip('ansible_builder', reason='ansible-builder is not installed (requirements-dev.txt)')


def _bin(name):
    path = os.path.join(BIN, name)
    return path if os.path.exists(path) else shutil.which(name)


def _run(*cmd, cwd=None, env=None):
    proc = subprocess.run(list(cmd), cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, check=False, timeout=300)
    message = '%s failed (rc=%s):\n%s\n%s' % (' '.join(cmd), proc.returncode, proc.stdout, proc.stderr)
    assert proc.returncode == 0, message
    return proc


def _load(path):
    with open(path, encoding='utf-8') as f:
        return yaml.safe_load(f)


def _galaxy():
    return _load(os.path.join(REPO, 'galaxy.yml'))


def _requirement_names(path):
    """Package names of a pip requirements file, following ``-r`` as pip and ansible-builder do."""
    names = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#')[0].strip()
            if not line:
                continue
            if line.startswith('-r'):
                names.extend(_requirement_names(os.path.join(os.path.dirname(path), line.split(None, 1)[1])))
                continue
            names.append(re.split(r'[<>=!~;\[ ]', line, maxsplit=1)[0].lower())
    return names


RUNTIME = {'kubernetes', 'pyyaml'}
# What requirements-dev.txt adds: none of it may reach an execution environment.
DEV_ONLY = set(_requirement_names(os.path.join(REPO, 'requirements-dev.txt'))) - RUNTIME


def _tarball_name():
    galaxy = _galaxy()
    return '%s-%s-%s.tar.gz' % (galaxy['namespace'], galaxy['name'], galaxy['version'])


@pytest.fixture(scope='module')
def ee():
    return _load(EE_FILE)


@pytest.fixture(scope='module')
def context(tmp_path_factory):
    """The build context, made the documented way from a copy of the EE files.

    The copy keeps the repository clean: the collection tarball goes into <tmp>/build/, where
    execution-environment.yml expects it relative to itself.
    """
    work = tmp_path_factory.mktemp('ee')
    shutil.copy(EE_FILE, work / 'execution-environment.yml')
    shutil.copy(os.path.join(REPO, 'bindep.txt'), work / 'bindep.txt')
    _run(_bin('ansible-galaxy'), 'collection', 'build', '--force', '--output-path', str(work / 'build'), REPO)
    assert (work / 'build' / _tarball_name()).exists()
    _run(_bin('ansible-builder'), 'create', '-f', 'execution-environment.yml', '-c', 'context',
         '--output-filename', 'Containerfile', cwd=str(work))
    return work / 'context'


def test_definition_is_schema_version_3_and_valid(ee):
    from ansible_builder.ee_schema import validate_schema  # pylint: disable=import-outside-toplevel

    assert ee['version'] == 3
    validate_schema(ee)  # raises DefinitionError naming the bad field


def test_definition_lists_the_collections_and_leaves_their_requirements_to_them(ee):
    deps = ee['dependencies']
    names = [c['name'] for c in deps['galaxy']['collections']]
    assert 'kubernetes.core' in names
    ours = [c for c in deps['galaxy']['collections'] if c.get('type') == 'file']
    assert [os.path.basename(c['name']) for c in ours] == [_tarball_name()], \
        'the EE must install the tarball of the version in galaxy.yml'
    assert [b['src'] for b in ee['additional_build_files']] == ['build/' + _tarball_name()]
    # the collection brings its requirements (meta/execution-environment.yml): nothing is
    # excluded, nothing is repeated here
    assert 'exclude' not in deps and 'python' not in deps and 'system' not in deps
    core = next(c for c in deps['galaxy']['collections'] if c['name'] == 'kubernetes.core')
    assert core['version'].startswith(_galaxy()['dependencies']['kubernetes.core']), \
        'kubernetes.core range of the EE must start where galaxy.yml dependencies start'


def test_collection_metadata_points_at_the_run_time_requirements():
    meta = _load(os.path.join(REPO, 'meta', 'execution-environment.yml'))
    assert meta == {'version': 1, 'dependencies': {'python': 'requirements.txt', 'system': 'bindep.txt'}}
    for name in meta['dependencies'].values():
        assert os.path.isfile(os.path.join(REPO, name))


def test_requirements_txt_is_run_time_only_and_dev_includes_it():
    assert set(_requirement_names(os.path.join(REPO, 'requirements.txt'))) == RUNTIME
    with open(os.path.join(REPO, 'requirements-dev.txt'), encoding='utf-8') as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    assert lines[0] == '-r requirements.txt'
    assert {'ansible', 'pytest', 'ansible-lint', 'httpbin', 'ansible-builder', 'matplotlib', 'antsibull-changelog',
            'ansible-runner', 'pytest-xdist', 'jinja2'} <= DEV_ONLY


def test_make_venv_installs_the_development_requirements():
    with open(os.path.join(REPO, 'Makefile'), encoding='utf-8') as f:
        makefile = f.read()
    stamp = re.search(r'^\$\(VENV\)/\.requirements\.stamp: (.*)$', makefile, re.MULTILINE)
    assert stamp and {'requirements.txt', 'requirements-dev.txt'} <= set(stamp.group(1).split())
    assert '-r requirements-dev.txt' in makefile


def test_bindep_lines_are_valid():
    with open(os.path.join(REPO, 'bindep.txt'), encoding='utf-8') as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    assert lines, 'bindep.txt lists no package'
    for line in lines:
        name = line.split()[0]
        assert name.replace('-', '').replace('.', '').replace('_', '').isalnum(), line
        if '[' in line:
            assert line.endswith(']'), line


def test_containerfile_uses_the_base_image_and_introspects_the_collections(ee, context):
    containerfile = (context / 'Containerfile').read_text(encoding='utf-8')
    base = ee['images']['base_image']['name']
    assert 'ARG EE_BASE_IMAGE="%s"' % base in containerfile
    assert 'FROM $EE_BASE_IMAGE AS base' in containerfile
    # galaxy stage: the collections of requirements.yml, from the context
    assert 'COPY _build /build' in containerfile
    assert '-r requirements.yml' in containerfile
    # builder stage: the requirements of every installed collection, ours included
    assert 'introspect.py introspect' in containerfile
    assert '--exclude-collection-reqs' not in containerfile and '--user-pip' not in containerfile
    assert ee['dependencies']['python_interpreter']['python_path'] in containerfile
    assert 'ansible-core' in containerfile and 'ansible-runner' in containerfile


def test_context_has_the_collection_with_its_metadata(ee, context):
    build = context / '_build'
    assert not (build / 'requirements.txt').exists() and not (build / 'exclude-collections.txt').exists()
    galaxy = _load(build / 'requirements.yml')
    assert galaxy == ee['dependencies']['galaxy']

    tarball = build / 'collections' / _tarball_name()
    assert tarball.exists(), sorted(str(p.relative_to(context)) for p in build.rglob('*'))
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile('MANIFEST.json'))
        shipped_requirements = tar.extractfile('requirements.txt').read().decode('utf-8')
    info = manifest['collection_info']
    assert (info['namespace'], info['name'], info['version']) == ('meshlink', 'multicluster', _galaxy()['version'])
    assert {'playbooks/setup.yml', 'playbooks/verify.yml', 'playbooks/teardown.yml', 'playbooks/preflight.yml',
            'meta/runtime.yml', 'plugins/modules/remote_services.py', 'meta/execution-environment.yml',
            'requirements.txt', 'bindep.txt'} <= names
    with open(os.path.join(REPO, 'requirements.txt'), encoding='utf-8') as f:
        assert shipped_requirements == f.read()


def test_galaxy_and_builder_stages_replayed_offline(context, tmp_path):
    """What the image would contain, from the context's own files and scripts.

    Galaxy stage: ``ansible-galaxy collection install -r requirements.yml`` in /build; here
    only the file entry (kubernetes.core would come from Galaxy: the copy bundled with the
    ``ansible`` package stands in for it). Builder stage: the context's introspect.py over
    those collections, with the context's requirement and exclusion files.
    """
    build = context / '_build'
    collections = tmp_path / 'collections'
    galaxy = _load(build / 'requirements.yml')
    local = {'collections': [c for c in galaxy['collections'] if c.get('type') == 'file']}
    (tmp_path / 'local-requirements.yml').write_text(yaml.safe_dump(local), encoding='utf-8')
    # in /build, as the galaxy stage runs it (relative file names resolve from there)
    _run(_bin('ansible-galaxy'), 'collection', 'install', '-r', str(tmp_path / 'local-requirements.yml'),
         '-p', str(collections), '--no-deps', cwd=str(build), env={'ANSIBLE_COLLECTIONS_PATH': str(collections)})
    installed = collections / 'ansible_collections' / 'meshlink' / 'multicluster'
    assert (installed / 'playbooks' / 'setup.yml').exists()

    core = os.path.join(sysconfig.get_paths()['purelib'], 'ansible_collections', 'kubernetes', 'core')
    assert os.path.isdir(core), 'kubernetes.core missing: requirements.txt installs it with the ansible package'
    shutil.copytree(core, collections / 'ansible_collections' / 'kubernetes' / 'core')

    out_pip, out_bindep = tmp_path / 'pip.txt', tmp_path / 'bindep.txt'
    _run(sys.executable, str(build / 'scripts' / 'introspect.py'), 'introspect', str(collections),
         '--write-pip', str(out_pip), '--write-bindep', str(out_bindep))
    pip = [line.split('#')[0].strip() for line in out_pip.read_text(encoding='utf-8').splitlines() if line.strip()]
    names = {re.split(r'[<>=!~;\[ ]', line, maxsplit=1)[0].lower() for line in pip}
    assert 'kubernetes' in names, pip
    # ours, read from the collection's meta/execution-environment.yml
    ours = [line for line in out_pip.read_text(encoding='utf-8').splitlines() if 'meshlink.multicluster' in line]
    # (ansible-builder drops PyYAML: ansible-core brings it)
    ours_names = {re.split(r'[<>=!~;\[ ]', line, maxsplit=1)[0].lower() for line in ours}
    assert 'kubernetes' in ours_names and ours_names <= RUNTIME, ours
    # nothing of the repository's development requirements reaches the image
    assert not names & DEV_ONLY, sorted(names & DEV_ONLY)
    bindep = out_bindep.read_text(encoding='utf-8')
    assert 'ca-certificates' in bindep and 'meshlink.multicluster' in bindep
