"""The directory the kubelet puts first on a Pod's ``PYTHONPATH`` (see ``sitecustomize.py``).

It is a package only so that the shim ships in wheels; nothing imports it by this name.
"""
