# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""The old in-tree Magnum Heat driver's stack, to compare celtic against.

k8s_fedora_coreos_v1 was last shipped in magnum 22.0.0 (Magnum 23 removed it). Its
templates are taken from that wheel, downloaded from PyPI when the benchmark runs (into
``$CELTIC_BENCH_CACHE``, default ``~/.cache/magnum-celtic-bench``), never copied into this
repository. The request is assembled the way magnum/drivers/heat/driver.py ``_create_stack``
did: ``template_utils.get_template_contents`` for kubecluster.yaml and its files, the
environment list ``K8sFedoraTemplateDefinition.get_env_files`` built for a cluster with
a private network, floating IPs, no master LB and no volumes, and parameters for the
26 that have no default.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import uuid
import zipfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

VERSION = '22.0.0'
DRIVER = 'magnum/drivers/k8s_fedora_coreos_v1/templates/'
COMMON = 'magnum/drivers/common/templates/'

#: what get_env_files() gave for: private network, no etcd volume, no docker volume,
#: no master LB, floating IPs on (and so no LB floating IP)
ENVIRONMENTS = ('with_private_network', 'no_etcd_volume', 'no_volume', 'no_master_lb',
                'enable_floating_ip', 'disable_lb_floating_ip')


def cache_dir() -> str:
    return os.environ.get('CELTIC_BENCH_CACHE') or os.path.expanduser(
        '~/.cache/magnum-celtic-bench')


def fetch() -> str:
    """Download magnum 22.0.0 from PyPI (once) and unpack its Heat templates; return
    the directory that holds ``magnum/``."""
    root = os.path.join(cache_dir(), 'magnum-%s' % VERSION)
    marker = os.path.join(root, DRIVER, 'kubecluster.yaml')
    if os.path.exists(marker):
        return root
    wheels = os.path.join(cache_dir(), 'wheels')
    os.makedirs(wheels, exist_ok=True)
    found = glob.glob(os.path.join(wheels, 'magnum-%s-*.whl' % VERSION))
    if not found:
        subprocess.run([sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps',
                        '--only-binary', ':all:', '--dest', wheels,
                        'magnum==%s' % VERSION], check=True, timeout=600)
        found = glob.glob(os.path.join(wheels, 'magnum-%s-*.whl' % VERSION))
    if not found:
        raise RuntimeError('pip did not download the magnum %s wheel' % VERSION)
    with zipfile.ZipFile(found[0]) as wheel:
        members = [m for m in wheel.namelist() if m.startswith((DRIVER, COMMON))]
        wheel.extractall(root, members)
    return root


def _service_account_keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return public, private


def parameters(name: str, masters: int, minions: int, image: str, flavor: str,
               keypair: str, external_network: str) -> dict:
    """Values for kubecluster.yaml: the 26 parameters without a default, and the
    counts, image, flavors and key the cluster template would give."""
    public, private = _service_account_keys()
    cluster_uuid = str(uuid.uuid4())
    return {
        'is_cluster_stack': True,
        'number_of_masters': masters, 'number_of_minions': minions,
        'master_image': image, 'minion_image': image,
        'master_flavor': flavor, 'minion_flavor': flavor,
        'ssh_key_name': keypair, 'external_network': external_network,
        'fixed_network_name': name + '-net', 'fixed_subnet_cidr': '10.0.0.0/24',
        'network_driver': 'calico', 'pods_network_cidr': '10.100.0.0/16',
        'boot_volume_size': 0, 'boot_volume_type': '', 'etcd_volume_type': '',
        'docker_volume_type': '',
        'discovery_url': 'https://discovery.etcd.io/%s' % uuid.uuid4().hex,
        'region_name': 'RegionOne', 'username': 'demo', 'verify_ca': False,
        'cluster_uuid': cluster_uuid, 'magnum_url': 'http://127.0.0.1:9511/v1',
        'trustee_domain_id': uuid.uuid4().hex, 'trustee_user_id': uuid.uuid4().hex,
        'trustee_username': '%s_trustee' % cluster_uuid, 'trustee_password': 'bench',
        'trust_id': uuid.uuid4().hex, 'auth_url': 'http://127.0.0.1:5000/v3',
        'cloud_provider_enabled': False, 'openstack_ca': '',
        'nodes_affinity_policy': 'soft-anti-affinity',
        'kube_service_account_key': public, 'kube_service_account_private_key': private,
        'project_id': uuid.uuid4().hex, 'max_node_count': max(minions + 10, 60),
    }


def create_kwargs(root: str, name: str, masters: int, minions: int, image: str,
                  flavor: str, keypair: str, external_network: str,
                  timeout_mins: int = 60) -> dict:
    """heatclient ``stacks.create`` keyword arguments, as Magnum 22 sent them."""
    from heatclient.common import template_utils
    files, template = template_utils.get_template_contents(
        os.path.join(root, DRIVER, 'kubecluster.yaml'))
    env_paths = [os.path.join(root, COMMON, 'environments', e + '.yaml')
                 for e in ENVIRONMENTS]
    env_files, env_map = template_utils.process_multiple_environments_and_files(
        env_paths=env_paths, env_list_tracker=(tracker := []))
    files.update(env_files)
    return {'stack_name': name, 'template': template, 'files': files,
            'environment_files': tracker, 'disable_rollback': True,
            'timeout_mins': timeout_mins,
            'parameters': parameters(name, masters, minions, image, flavor, keypair,
                                     external_network)}
