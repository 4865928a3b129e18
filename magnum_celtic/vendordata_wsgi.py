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

"""celtic-vendordata as a WSGI application for uWSGI or Apache mod_wsgi:
``uwsgi --module magnum_celtic.vendordata_wsgi:application`` (magnum.conf from
CELTIC_VENDORDATA_CONFIG, default /etc/magnum/magnum.conf)."""

from magnum_celtic import vendordata

application = vendordata.init_application()
