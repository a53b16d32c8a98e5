"""Offline stand-in for the pip bootstrap script ansible-test downloads.

ansible-test makes each sanity test's virtualenv without pip and fetches
get-pip.py from its own file server (not a package registry), which this
machine cannot reach. This does the same from what is here: the pip that
Python bundles (ensurepip), then the pinned pip and packages ansible-test
asks for, from the package index pip is set up for. The test copies it to
ansible-test's cache path (~/.ansible/test/cache/get_pip_X_Y.py), where
ansible-test's own message says to put the script, unless one is there.
"""

import subprocess
import sys

# get-pip.py's own switches: this stand-in installs no setuptools or wheel anyway.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
# In a child: ensurepip points PIP_CONFIG_FILE at /dev/null in its own
# environment, and the install below needs the machine's pip config (its
# index, its CA bundle).
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
