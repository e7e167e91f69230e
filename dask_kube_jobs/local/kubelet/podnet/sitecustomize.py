"""Pod networking for the Python processes of a local Pod (loaded through ``PYTHONPATH``).

The process kubelet runs every Pod on the host's network, so without help two Pods could not
both listen on 8786 and ``<svc>.<ns>.svc.cluster.local`` would mean nothing. Python runs this
module at start-up (``site`` imports ``sitecustomize``) when the kubelet puts this directory first
on ``PYTHONPATH`` and sets ``DKJ_POD_IP``; it then, inside that process only:

* binds wildcard listeners (``0.0.0.0``, ``''``; ``::`` as the v4-mapped Pod IP, or "address
  not available" on a v6-only socket) to the Pod's own loopback IP, and offers only IPv4 for a
  passive wildcard ``getaddrinfo``, so a server sees and advertises the Pod IP;
* answers the "which local address reaches 8.8.8.8" idiom (a UDP ``connect`` to a non-loopback
  IP, used by ``distributed.utils.get_ip``) with the Pod IP without any system call, so nothing
  ever leaves the host and Dask advertises ``tcp://<podIP>:<port>``;
* resolves Service names (``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.cluster.local``,
  ``<hostname>.<svc>.<ns>.svc.cluster.local``, ``<a-b-c-d>.<ns>.pod.cluster.local``) from the
  service map that the kubelet keeps (``DKJ_SERVICE_MAP``), to a ready backend Pod IP with the
  Service port mapped to the backend's target port, like a ClusterIP plus kube-proxy would;
  names under the cluster domain that do not exist fail at once and never reach the host's DNS;
* resolves the Pod's host name (``HOSTNAME``, set by the kubelet) and the machine's to the Pod
  IP, as ``/etc/hosts`` does inside a Pod.

It must stay tiny, stdlib-only and cheap to import, because every Pod process loads it. It only
changes Python's ``socket`` module: programs that are not Python (or that use ``_socket`` or
uvloop directly) see the host network unchanged. An existing ``sitecustomize`` later on
``sys.path`` is still run (chained), so user environments keep theirs.
"""

import os
import sys


def _chain():
    """Run the ``sitecustomize`` this one shadows, if there is one."""
    here = os.path.dirname(os.path.realpath(__file__))
    path = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    try:
        from importlib.machinery import PathFinder
        from importlib.util import module_from_spec

        spec = PathFinder.find_spec("sitecustomize", path)
        if spec is None or spec.loader is None:
            return
        module = module_from_spec(spec)
        sys.modules["_dkj_chained_sitecustomize"] = module
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken user sitecustomize must not break the Pod's network
        sys.stderr.write(f"dask-kube-jobs: chained sitecustomize failed: {exc!r}\n")


def _install(pod_ip, namespace, map_path):
    import _socket
    import socket

    AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
    gaierror = socket.gaierror
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_gethostbyname_ex = socket.gethostbyname_ex
    real_bind = _socket.socket.bind
    real_connect = _socket.socket.connect
    real_connect_ex = _socket.socket.connect_ex
    wild4 = ("", "0.0.0.0")
    wild6 = ("", "::", "::0", "0:0:0:0:0:0:0:0")
    domain = ".cluster.local"
    search = (f"{namespace}.svc{domain}", f"svc{domain}", domain[1:])
    hostnames = {socket.gethostname().lower(), os.environ.get("HOSTNAME", "").lower()} - {""}
    cache = [None, {}]
    cache_hosts = [None]
    turn = [0]

    def services():
        # One stat per lookup: the kubelet replaces the file atomically, so a new inode or mtime
        # means new content.
        try:
            st = os.stat(map_path)
        except OSError:
            return cache[1]
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != cache[0]:
            import json

            try:
                with open(map_path, encoding="utf-8") as fh:
                    data = json.load(fh).get("services", {})
            except (OSError, ValueError):
                return cache[1]
            cache[0], cache[1] = key, data
        return cache[1]

    def is_ip(host):
        for fam in (AF_INET, AF_INET6):
            try:
                _socket.inet_pton(fam, host)
                return True
            except (OSError, ValueError, TypeError):
                pass
        return False

    def resolve(host, port):
        """[(ip, port)] for a cluster name, None if it is not one; NONAME if it should be."""
        name = host.lower()
        absolute = name.endswith(".")
        name = name.rstrip(".")
        if name in hostnames:
            return [(pod_ip, port)]
        if not name or is_ip(name):
            return None
        if absolute or name.count(".") >= 5:
            candidates = [name]
        else:
            candidates = [f"{name}.{s}" for s in search] + [name]
        table = services()
        for fqdn in candidates:
            if not fqdn.endswith(domain):
                continue
            labels = fqdn[: -len(domain)].split(".")
            if len(labels) == 3 and labels[2] == "pod":
                ip = labels[0].replace("-", ".")
                if is_ip(ip):
                    return [(ip, port)]
            elif len(labels) in (3, 4) and labels[-1] == "svc":
                svc = table.get(f"{labels[-2]}/{labels[-3]}")
                if svc is not None:
                    return endpoints(svc, labels[0] if len(labels) == 4 else None, port)
        if name.endswith((domain, ".svc")) or (
            name.count(".") == 1 and any(k.startswith(name.split(".")[1] + "/") for k in table)
        ):
            raise gaierror(socket.EAI_NONAME, "Name or service not known")
        if name in local_names():
            return None
        # Anything else would go to the host's DNS server, which may sit off loopback: Pods of
        # the local control plane have no network beyond this machine, so fail here instead.
        raise gaierror(socket.EAI_NONAME, "Name or service not known")

    def local_names():
        if cache_hosts[0] is None:
            names = set()
            try:
                with open("/etc/hosts", encoding="utf-8") as fh:
                    for line in fh:
                        names.update(w.lower() for w in line.split("#", 1)[0].split()[1:])
            except OSError:
                pass
            cache_hosts[0] = names | {"localhost"}
        return cache_hosts[0]

    def endpoints(svc, hostname, port):
        backends = svc.get("backends") or []
        if isinstance(port, str) and not port.isdigit():
            port = svc.get("portNames", {}).get(port, port)
        if hostname is not None:
            found = [(b["ip"], port) for b in backends if b.get("hostname") == hostname]
            if not found:
                raise gaierror(socket.EAI_NONAME, "Name or service not known")
            return found
        if svc.get("clusterIP") is None:  # headless: the backends themselves, ports unchanged
            if not backends:
                raise gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(b["ip"], port) for b in backends]
        if not backends:  # nothing ready: the cluster IP, where nothing listens (refused)
            return [(svc["clusterIP"], port)]
        turn[0] += 1  # round-robin over ready backends, as kube-proxy spreads connections
        k = turn[0] % len(backends)
        key = str(port)
        return [(b["ip"], b.get("ports", {}).get(key, port)) for b in backends[k:] + backends[:k]]

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if isinstance(host, bytes):
            host = host.decode("idna")
        if host is None or host in wild4 or host in wild6:
            infos = real_getaddrinfo(host, port, family, type, proto, flags)
            if host is None and family == 0:  # a passive wildcard: IPv4 only (the Pod IP)
                infos = [i for i in infos if i[0] == AF_INET] or infos
            return infos
        found = resolve(host, port)
        if found is None:
            return real_getaddrinfo(host, port, family, type, proto, flags)
        out = []
        for ip, p in found:
            fam = AF_INET6 if ":" in ip else AF_INET
            if family not in (0, fam):
                continue
            out += real_getaddrinfo(ip, p, fam, type, proto, flags | socket.AI_NUMERICHOST)
        if not out:
            raise gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
        return out

    def gethostbyname(host):
        found = resolve(host, 0)
        return real_gethostbyname(host) if found is None else found[0][0]

    def gethostbyname_ex(host):
        found = resolve(host, 0)
        if found is None:
            return real_gethostbyname_ex(host)
        return host, [], [ip for ip, _ in found]

    def bind(self, address):
        if isinstance(address, tuple) and address:
            fam, host = self.family, address[0]
            if fam == AF_INET and host in wild4:
                address = (pod_ip,) + address[1:]
            elif fam == AF_INET6 and host in wild6:
                if self.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY):
                    import errno

                    raise OSError(errno.EADDRNOTAVAIL, "a local Pod has no IPv6 address")
                address = ("::ffff:" + pod_ip,) + address[1:]
        return real_bind(self, address)

    def probe(self, address):
        """True for a UDP connect that only asks which local address routes to a remote one."""
        if self.type != socket.SOCK_DGRAM or self.family not in (AF_INET, AF_INET6):
            return False
        if not isinstance(address, tuple) or not is_ip(str(address[0])):
            return False
        host = str(address[0])
        if host.startswith("127.") or host in ("::1",) or host.startswith("::ffff:127."):
            return False
        try:
            if self.getsockname()[1] == 0:
                bind(self, ("", 0))
        except OSError:
            pass
        return True

    def connect(self, address):
        if probe(self, address):
            return None
        return real_connect(self, address)

    def connect_ex(self, address):
        if probe(self, address):
            return 0
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.socket.bind = bind
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex


if os.environ.get("DKJ_POD_IP"):
    try:
        _install(os.environ["DKJ_POD_IP"], os.environ.get("DKJ_POD_NAMESPACE", "default"),
                 os.environ.get("DKJ_SERVICE_MAP", ""))
    except Exception as exc:
        sys.stderr.write(f"dask-kube-jobs: pod network shim not installed: {exc!r}\n")
_chain()
