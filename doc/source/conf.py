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

"""Sphinx configuration of the nova-migration-net documentation.

Built by ``tox -e docs``. The option reference is generated from the
installed package's ``oslo.config.opts`` entry points, so the package must
be installed in the building environment.
"""

extensions = [
    'openstackdocstheme',
    'oslo_config.sphinxext',
]

source_suffix = '.rst'
master_doc = 'index'
# Included by upgrade.rst, not a page of its own.
exclude_patterns = ['*.inc']

project = 'nova-migration-net'
copyright = 'nova-migration-net developers'

pygments_style = 'native'

openstackdocs_repo_name = 'nova-migration-net'
openstackdocs_auto_name = False
openstackdocs_use_storyboard = False

html_theme = 'openstackdocs'
htmlhelp_basename = 'NovaMigrationNetdoc'
