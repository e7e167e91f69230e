"""The pure parts of ``kubectl exec``: request options, the final Status, terminal sizes, the
argv that enters a container, and the API server's choice of container and RBAC wording."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import MultiDict

from dask_kube_jobs.local.apiserver import errors
from dask_kube_jobs.local.apiserver.proxy import exec_container
from dask_kube_jobs.local.kubelet.container import enter_argv
from dask_kube_jobs.local.kubelet.podexec import (
    ERROR,
    RESIZE,
    STDIN,
    STDOUT,
    ExecOptions,
    ExecRequestError,
    ResizeDecoder,
    exit_status,
    missing_program,
)


def test_options_take_the_api_servers_and_the_kubelets_names() -> None:
    opts = ExecOptions.from_query(MultiDict([("command", "sh"), ("command", "-c"),
                                             ("command", "echo hi"), ("input", "1"),
                                             ("stdout", "true"), ("error", "1")]))
    assert opts.command == ["sh", "-c", "echo hi"]
    assert (opts.stdin, opts.stdout, opts.stderr, opts.tty) == (True, True, True, False)


def test_a_terminal_has_no_stderr_and_a_resize_stream() -> None:
    opts = ExecOptions.from_query(MultiDict([("command", "sh"), ("stdin", "true"),
                                             ("stdout", "true"), ("stderr", "true"),
                                             ("tty", "true")]))
    assert not opts.stderr
    assert opts.streams() == {ERROR, STDIN, STDOUT, RESIZE}


@pytest.mark.parametrize(("query", "message"), [
    ([("stdout", "1")], "you must specify at least 1 command"),
    ([("command", "ls")], "you must specify at least 1 of stdin, stdout, stderr"),
], ids=["no-command", "no-stream"])
def test_options_refuse_what_the_kubelet_refuses(query: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ExecRequestError) as caught:
        ExecOptions.from_query(MultiDict(query))
    assert (caught.value.status, str(caught.value)) == (400, message)


def test_exit_status_is_a_status_kubectl_reads_the_code_from() -> None:
    assert exit_status(["true"], 0) == {"metadata": {}, "status": "Success"}
    failed = exit_status(["sh", "-c", "exit 3"], 3)
    assert failed["status"] == "Failure" and failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert failed["message"] == ("command terminated with non-zero exit code: error executing "
                                 "command [sh -c exit 3], exit code 3")
    broken = exit_status(["x"], None, "no such file")
    assert (broken["reason"], broken["code"]) == ("InternalError", 500)
    assert broken["message"] == ("Internal error occurred: error executing command in container: "
                                 "no such file")


def test_resize_messages_may_arrive_split_or_together() -> None:
    decoder = ResizeDecoder()
    assert decoder.feed(b'{"Width":80,') == []
    assert decoder.feed(b'"Height":24}{"Width":100,"Height":30}\n{"Wid') == [(80, 24), (100, 30)]
    assert decoder.feed(b'th":1,"Height":2}') == [(1, 2)]


def test_entering_a_container_joins_its_mount_namespace_cgroup_and_directory(tmp_path: Path) -> None:
    argv = enter_argv(["cat", "f"], pid=1234, workdir="/data dir", namespace_mode=True,
                      cgroup=tmp_path)
    if argv[0] == "nsenter":  # present wherever the kubelet gives containers mount namespaces
        assert argv[:6] == ["nsenter", "--target", "1234", "--mount", "--", "/bin/sh"]
    script = argv[argv.index("-c") + 1]
    assert f"echo $$ > {tmp_path / 'cgroup.procs'}" in script
    assert "cd '/data dir'" in script
    assert argv[-3:] == ["dkj-exec", "cat", "f"]
    plain = enter_argv(["ls"], pid=1234, workdir="/", namespace_mode=False)
    assert plain[0] == "/bin/sh" and "cgroup.procs" not in plain[2]


class _Context:
    def __init__(self, workdir: Path) -> None:
        self.env = {"PATH": "/nowhere:/bin"}
        self.workdir = str(workdir)
        self.pid: int | None = None

    def exec_argv(self, command: list[str]) -> list[str]:
        return command


def test_a_program_the_container_lacks_is_refused_in_the_runtimes_words(tmp_path: Path) -> None:
    ctx = _Context(tmp_path)
    assert missing_program(ctx, "sh") == ""
    assert missing_program(ctx, "/bin/sh") == ""
    assert missing_program(ctx, "./run.sh").endswith(
        'exec: "./run.sh": stat ./run.sh: no such file or directory: unknown')
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    assert missing_program(ctx, "./run.sh").endswith('exec: "./run.sh": permission denied: unknown')
    script.chmod(0o755)
    assert missing_program(ctx, "./run.sh") == ""
    refusal = missing_program(ctx, "no-such-program")
    assert refusal.startswith('failed to exec in container: failed to start exec "')
    assert refusal.endswith('unable to start container process: exec: "no-such-program": '
                            "executable file not found in $PATH: unknown")


POD = {"metadata": {"name": "p"},
       "spec": {"initContainers": [{"name": "init"}],
                "containers": [{"name": "a"}, {"name": "b"}]}}


def test_the_api_server_picks_and_checks_the_container_as_kube_apiserver() -> None:
    assert exec_container(POD, "init") == "init"
    assert exec_container({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}},
                          "") == "a"
    with pytest.raises(errors.APIError) as caught:
        exec_container(POD, "")
    assert caught.value.message == ("a container name must be specified for pod p, choose one "
                                    "of: [a b] or one of the init containers: [init]")
    with pytest.raises(errors.APIError) as caught:
        exec_container(POD, "nope")
    assert (caught.value.code, caught.value.message) == (400, "container nope is not valid for pod p")


def test_a_refused_subresource_is_named_after_its_parent() -> None:
    refused = errors.forbidden("u", "create", "pods", "", "ns", "p", subresource="exec")
    assert refused.message == ('pods "p" is forbidden: User "u" cannot create resource '
                               '"pods/exec" in API group "" in the namespace "ns"')
