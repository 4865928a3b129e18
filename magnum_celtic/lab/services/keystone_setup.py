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

"""``keystone-manage bootstrap`` plus the lab's identities, in one process.

Runs Keystone's own bootstrap (admin project, user, roles, identity endpoints), then
creates what the lab needs through the same Keystone managers bootstrap uses: extra
roles, domains, projects, users with their role grants, and catalog entries. One process
instead of a couple of dozen API calls keeps the lab's start short on a busy machine.

Usage: python -m magnum_celtic.lab.services.keystone_setup KEYSTONE_CONF SPEC_JSON RESULT_JSON
(SPEC_JSON lists roles, domains, projects, users and services; the admin password and
URLs are in it too). RESULT_JSON receives the ids of the domains and projects.
"""

import json
import sys
import uuid


def _provision(spec: dict) -> dict:
    from keystone.common import provider_api
    from keystone import exception
    providers = provider_api.ProviderAPIs
    roles = {r['name']: r['id'] for r in providers.role_api.list_roles()}
    for name in spec.get('roles', []):
        if name not in roles:
            role_id = uuid.uuid4().hex
            providers.role_api.create_role(role_id, {'id': role_id, 'name': name})
            roles[name] = role_id
    domains = {'default': 'default'}
    for name in spec.get('domains', []):
        domain_id = uuid.uuid4().hex
        providers.resource_api.create_domain(domain_id, {
            'id': domain_id, 'name': name, 'enabled': True,
            'description': 'created by the celtic lab'})
        domains[name] = domain_id
    projects = {}
    for name in spec.get('projects', []):
        try:
            project = providers.resource_api.get_project_by_name(name, 'default')
        except exception.ProjectNotFound:
            project_id = uuid.uuid4().hex
            project = providers.resource_api.create_project(project_id, {
                'id': project_id, 'name': name, 'domain_id': 'default', 'enabled': True,
                'description': 'created by the celtic lab'})
        projects[name] = project['id']
    for user in spec.get('users', []):
        created = providers.identity_api.create_user(user_ref={
            'name': user['name'], 'enabled': True, 'password': user['password'],
            'domain_id': domains[user.get('domain', 'default')]})
        for grant in user.get('grants', []):
            if 'project' in grant:
                providers.assignment_api.add_role_to_user_and_project(
                    created['id'], projects[grant['project']], roles[grant['role']])
            else:
                providers.assignment_api.create_grant(
                    roles[grant['role']], user_id=created['id'],
                    domain_id=domains[grant['domain']])
    for service in spec.get('services', []):
        service_id = uuid.uuid4().hex
        providers.catalog_api.create_service(service_id, {
            'id': service_id, 'name': service['name'], 'type': service['type'],
            'enabled': True})
        for interface in ('public', 'internal', 'admin'):
            endpoint_id = uuid.uuid4().hex
            providers.catalog_api.create_endpoint(endpoint_id, {
                'id': endpoint_id, 'interface': interface, 'url': service['url'],
                'service_id': service_id, 'region_id': spec['region'], 'enabled': True})
    return {'domains': domains, 'projects': projects}


def main() -> None:
    conf_file, spec_file, result_file = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(spec_file) as f:
        spec = json.load(f)
    from keystone.cmd import cli
    cli.main(argv=['keystone-manage', '--config-file', conf_file, 'bootstrap',
                   '--bootstrap-password=' + spec['admin_password'],
                   '--bootstrap-admin-url', spec['identity_url'],
                   '--bootstrap-internal-url', spec['identity_url'],
                   '--bootstrap-public-url', spec['identity_url'],
                   '--bootstrap-region-id', spec['region']])
    result = _provision(spec)
    with open(result_file, 'w') as f:
        json.dump(result, f)


if __name__ == '__main__':
    main()
