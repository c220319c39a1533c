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

"""Sphinx configuration of the nova-migration-net release notes.

Built by ``tox -e releasenotes``; reno collects the notes from
``releasenotes/notes`` in the git history of this repository.
"""

# -- General configuration ------------------------------------------------

extensions = [
    'openstackdocstheme',
    'reno.sphinxext',
]

source_suffix = '.rst'
master_doc = 'index'

project = 'nova-migration-net Release Notes'
copyright = 'nova-migration-net developers'

# Release notes are not versioned: each page covers a series.
version = ''
release = ''

exclude_patterns = []
pygments_style = 'native'

# -- openstackdocstheme ---------------------------------------------------

openstackdocs_repo_name = 'nova-migration-net'
openstackdocs_auto_name = False
openstackdocs_use_storyboard = False

# -- Options for HTML output ----------------------------------------------

html_theme = 'openstackdocs'
htmlhelp_basename = 'NovaMigrationNetReleaseNotesdoc'

# -- Options for Internationalization output ------------------------------

locale_dirs = ['locale/']
