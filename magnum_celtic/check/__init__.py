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

"""``magnum-celtic check``: prove celtic on a real cloud in one command.

The command creates a small celtic cluster through Magnum with the operator's own
clouds.yaml entry, then runs named steps one after another (``steps.py``): each is timed
and reported pass, fail or skip with its evidence, one progress line per step, a
summary table at the end, and a JSON report with ``--report``. OpenStack calls go
through openstacksdk (``cloud.py``), Magnum's through python-magnumclient on the same
keystoneauth session, Kubernetes calls through the official Python client (``kube.py``)
with a kubeconfig made as ``openstack coe cluster config`` makes it. Nothing printed or
written carries a credential.

Its dependencies are the ``check`` extra (``pip install 'magnum-celtic[check]'``); the
driver needs none of them.
"""
