"""The sandbox's child process, run by path as `python -I -S -B -u program.py --serve FD`: stdlib only,
it imports nothing of grpo_rlvr (the host side is `grpo_rlvr.sandbox.host` and `.server`). Started once
per host process as a fork server, it forks one fresh child per run (`start_run`), which runs `main`.
One file, because it runs by path with nothing of the package on its path.

It reads two length-prefixed JSON parts from stdin: the program, limits and what the tests import first;
the tests and the per-run nonce only after the program's process has been forked off, so they are never
in its memory. It then splits in two: the *program's process* runs the untrusted code and answers
requests; the *judge* runs the tests and writes the verdict line on a pipe the program's process does
not hold. Only values cross between them (tagged JSON), never objects.
"""

import _thread
import builtins
import contextlib
import ctypes
import json
import os
import resource
import select
import socket
import stat
import struct
import sys
import traceback

LIBC = ctypes.CDLL(None, use_errno=True)
ULONG = ctypes.c_ulong
CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWPID = 0x20000, 0x40000000, 0x10000000, 0x20000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x1, 0x20, 0x1000, 0x4000, 0x40000
FRAME_CAP = 64 << 20  # the largest message either side accepts
MAX_DEPTH = 100  # nesting of a value crossing between the processes
# machine: (AUDIT_ARCH, socketpair, denied syscall numbers): socket, ptrace, process_vm_readv/writev,
# io_uring x3, mount, umount2, pivot_root, unshare, setns, add_key, request_key, keyctl, bpf,
# perf_event_open, userfaultfd, fsopen... (see `seccomp`)
SECCOMP_TABLE = {
    "x86_64": (0xC000003E, 53, (41, 101, 310, 311, 425, 426, 427, 165, 166, 155, 272, 308,
                                248, 249, 250, 321, 298, 323, 304)),
    "aarch64": (0xC00000B7, 199, (198, 117, 270, 271, 425, 426, 427, 40, 39, 41, 97, 268,
                                  217, 218, 219, 280, 241, 282, 265)),
}  # fmt: skip
PLAIN_TAGS = {"l": list, "t": tuple, "s": set, "fs": frozenset}
SCALAR_TAGS = {
    "i": lambda s: int(s, 16),
    "f": float.fromhex,
    "b": bytes.fromhex,
    "ba": bytearray.fromhex,
    "c": lambda re, im: complex(float.fromhex(re), float.fromhex(im)),
}


# -- input ----------------------------------------------------------------------------------------


def read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            os._exit(4)
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_part() -> dict:
    return json.loads(read_exact(0, int(read_exact(0, 10))))


# -- kernel layers --------------------------------------------------------------------------------


def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = [None if s is None else s.encode() for s in (src, target, fstype, data)]
    if LIBC.mount(enc[0], enc[1], enc[2], ULONG(flags), enc[3]) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}")


def private_filesystem(hidden: list[str], disk_mb: int, max_files: int) -> None:
    """One size-limited tmpfs, its subfolders over each writable/secret dir, so the run's files share
    one `disk_mb` however many there are and wherever they are written; the interpreter's own dirs bound
    back in, every one of them read-only, so a program cannot change the stdlib that later runs import."""
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    keep = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    keep.add(os.path.dirname(os.path.realpath(sys.executable)))
    keep = {p for p in keep if p != "/" and not any(p.startswith(q.rstrip("/") + "/") for q in keep)}
    fds = {p: os.open(p, os.O_PATH) for p in keep if any(p.startswith(h + "/") for h in hidden)}
    dirs = [h for h in hidden if os.path.isdir(h) and not os.path.islink(h)]
    # the tmpfs goes to a dir no hidden one lies under, first mounted where it cannot be seen twice
    mount("tmpfs", dirs[0], "tmpfs", 0, f"size={disk_mb}m,nr_inodes={max_files},mode=1777")
    store = os.path.join(dirs[0], ".sandbox")
    os.mkdir(store, 0o700)
    for i in range(len(dirs)):
        os.mkdir(f"{store}/{i}", 0o1777)
        os.chmod(f"{store}/{i}", 0o1777)
    for i, path in enumerate(dirs[1:], 1):
        mount(f"{store}/{i}", path, None, MS_BIND, None)
    mount(f"{store}/0", dirs[0], None, MS_BIND, None)  # over the store itself: out of sight
    for path, fd in fds.items():
        os.makedirs(path, exist_ok=True)
        mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        os.close(fd)
    for path in keep:
        if path not in fds:
            mount(path, path, None, MS_BIND | MS_REC, None)
        mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
    os.makedirs("/tmp/work", mode=0o777)
    os.chmod("/tmp/work", 0o777)
    os.chdir("/tmp/work")


def shed_userns(root: bool, isolation: list[str]) -> None:
    """Not root: a nested user namespace, so no capability over the mounts made above remains."""
    if not root and "net" in isolation and LIBC.unshare(CLONE_NEWUSER) != 0:
        os._exit(3)


def seccomp() -> bool:
    """A BPF filter: no new sockets (no network, no Unix socket of the host, abstract or path),
    socketpair only as SOCK_STREAM (asyncio's self-pipe), no ptrace/process_vm_*, io_uring,
    mount/unshare/setns, keyrings, bpf, perf, userfaultfd; other architectures' calls kill."""
    if os.uname().machine not in SECCOMP_TABLE:
        return False
    arch, socketpair, denied = SECCOMP_TABLE[os.uname().machine]
    ld, jeq, jge, and_, ret = 0x20, 0x15, 0x35, 0x54, 0x06
    allow, deny, kill = 0x7FFF0000, 0x00050000 | 1, 0x80000000  # deny = ERRNO(EPERM)
    a = 5 + len(denied)  # index of the socketpair check; allow at a+4, deny at a+5
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, kill), (ld, 0, 0, 0), (jge, a, 0, 0x40000000)]
    prog += [(jeq, a + 5 - (6 + i), 0, nr) for i, nr in enumerate(denied)]
    prog += [(jeq, 0, 3, socketpair), (ld, 0, 0, 24), (and_, 0, 0, 0xF), (jeq, 0, 1, 1),
             (ret, 0, 0, allow), (ret, 0, 0, deny)]  # fmt: skip
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *ins) for ins in prog))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Fprog(len(prog), ctypes.addressof(buf))
    return LIBC.prctl(ULONG(22), ULONG(2), ctypes.byref(fprog), ULONG(0), ULONG(0)) == 0


def landlock_call(nr: int, *args: object) -> int:
    """landlock_* system calls; their numbers are the same on x86_64 and aarch64."""
    return LIBC.syscall(ctypes.c_long(nr), *(ULONG(a) if type(a) is int else a for a in args))


class RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock(hidden: list[str]) -> bool:
    """Without a private filesystem, Landlock (unprivileged, inherited by children): read only
    beneath the interpreter's and system library dirs and a few /dev nodes, read/write only in the
    work dir, so host dirs (/tmp, /opt/ml, /root, ...) and /proc (other processes' command lines)
    are out of reach; from ABI 6 no signal or abstract Unix socket outside the run, from ABI 4 no
    TCP. False where the kernel or the container's seccomp profile does not offer it."""
    abi = landlock_call(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, ..._VERSION)
    if abi < 1:  # ENOSYS, EOPNOTSUPP (not enabled), EPERM (a seccomp profile)
        return False
    # every filesystem right this ABI knows: v1's 13, REFER (v2), TRUNCATE (v3), IOCTL_DEV (v5)
    handled = (1 << 13) - 1 | (abi >= 2) << 13 | (abi >= 3) << 14 | (abi >= 5) << 15
    execute, write, read, read_dir, truncate = 1, 2, 4, 8, 1 << 14
    on_files = execute | write | read | truncate | 1 << 15  # the rights a rule on a file may hold
    hidden = [h.rstrip("/") + "/" for h in hidden]
    interpreter = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path,
                   os.path.dirname(os.path.realpath(sys.executable)), "/bin", "/etc", "/lib",
                   "/lib64", "/usr"}  # fmt: skip
    # read-only dirs, never one holding a hidden dir (/, or /opt over /opt/ml)
    rules = [
        (p, execute | read | read_dir)
        for p in sorted(interpreter)
        if p.startswith("/") and not any(h.startswith(p.rstrip("/") + "/") for h in hidden)
    ]
    rules += [("/dev/null", read | write | truncate), ("/dev/zero", read), ("/dev/random", read),
              ("/dev/urandom", read), (os.getcwd(), handled)]  # fmt: skip
    # net: bind and connect TCP (v4); scoped: abstract Unix sockets and signals (v6)
    attr = RulesetAttr(handled, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    ruleset = landlock_call(444, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if ruleset < 0:
        return False
    try:
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:  # absent, or beyond this uid's reach anyway
                continue
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    access &= on_files
                rule = PathBeneath(access & handled, fd)
                if landlock_call(445, ruleset, 1, ctypes.byref(rule), 0) != 0:  # ..._PATH_BENEATH
                    return False  # half a ruleset could lock out the interpreter: none at all
            finally:
                os.close(fd)
        return landlock_call(446, ruleset, 0) == 0  # landlock_restrict_self
    finally:
        os.close(ruleset)


def lockdown(cfg: dict, uid: int | None, isolation: list[str]) -> list[str]:
    """The last steps before untrusted or test code runs: uid, no_new_privs, rlimits, Landlock
    (unless the private filesystem hides the host already), seccomp (which leaves Landlock's
    calls allowed: a program may only restrict itself further)."""
    done = []
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        done.append("uid")
    LIBC.prctl(ULONG(38), ULONG(1), ULONG(0), ULONG(0), ULONG(0))  # PR_SET_NO_NEW_PRIVS
    for res, value in (
        (resource.RLIMIT_CPU, cfg["cpu_seconds"]),
        (resource.RLIMIT_AS, cfg["memory_mb"] << 20),
        (resource.RLIMIT_FSIZE, cfg["max_file_mb"] << 20),
        (resource.RLIMIT_NPROC, cfg["max_processes"]),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(res, (value, value))
    if "fs" not in isolation and landlock(cfg["hidden"]):
        done.append("landlock")
    if seccomp():
        done.append("seccomp")
    return done


def not_dumpable() -> None:
    """PR_SET_DUMPABLE 0: a process of the same uid may not ptrace us or open /proc/<pid>/mem, fd."""
    LIBC.prctl(ULONG(4), ULONG(0), ULONG(0), ULONG(0), ULONG(0))


def namespaces(cfg: dict, root: bool) -> list[str]:
    """New mount, network and pid namespaces (and a user namespace when not root), then the private
    filesystem; whatever the kernel refuses is left out of the mechanisms returned."""
    isolation = []
    if LIBC.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | (0 if root else CLONE_NEWUSER)) == 0:
        isolation.append("net")
        if not root:  # map ourselves in, so files keep our uid
            uid, gid = os.getuid(), os.getgid()
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                               ("gid_map", f"{gid} {gid} 1")):  # fmt: skip
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        try:
            private_filesystem(cfg["hidden"], cfg["disk_mb"], cfg["max_files"])
            isolation.append("fs")
        except OSError as e:
            print(f"sandbox: no private filesystem: {e}", file=sys.stderr)
    return isolation


# -- values cross between the two processes as tagged JSON, never as objects ----------------------


def encode(v: object, handle, depth: int = 0, key: bool = False) -> object:
    """Plain data by value (subclasses read through their base type); anything else becomes a
    handle (`handle(v)` -> int), except inside a set or a dict key, where it raises ValueError."""
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    if v is None or v is True or v is False or type(v) is str:
        return v
    n = depth + 1
    if isinstance(v, int):
        v = int.__index__(v)
        return v if -(1 << 62) < v < 1 << 62 else ["i", format(v, "x")]
    if isinstance(v, float):
        return ["f", float.hex(float.__float__(v))]
    if isinstance(v, complex):
        c = complex.__complex__(v)
        return ["c", float.hex(c.real), float.hex(c.imag)]
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, (bytes, bytearray)):
        return ["ba" if isinstance(v, bytearray) else "b", bytes(memoryview(v)).hex()]
    if isinstance(v, range):
        return ["r", v.start, v.stop, v.step]
    if isinstance(v, dict):
        return ["d", [[encode(k, handle, n, True), encode(x, handle, n, key)] for k, x in dict.items(v)]]
    for base, tag, in_key in ((list, "l", key), (tuple, "t", key), (set, "s", True), (frozenset, "fs", True)):
        if isinstance(v, base):
            return [tag, [encode(x, handle, n, in_key) for x in base.__iter__(v)]]
    if key:
        raise ValueError("not plain data")
    return ["h", handle(v)]


def decode(x: object, handle, depth: int = 0) -> object:
    """The inverse of `encode` into fresh objects of the builtin types; anything malformed raises."""
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    if x is None or type(x) in (bool, int, str):
        return x
    if type(x) is not list or not x or type(x[0]) is not str:
        raise ValueError("malformed value")
    tag, args, n = x[0], x[1:], depth + 1
    if tag in PLAIN_TAGS and len(args) == 1 and type(args[0]) is list:
        return PLAIN_TAGS[tag](decode(i, handle, n) for i in args[0])
    if tag == "d" and len(args) == 1 and type(args[0]) is list:
        return {decode(k, handle, n): decode(v, handle, n) for k, v in args[0]}
    if tag == "r" and len(args) == 3 and all(type(a) is int for a in args):
        return range(*args)
    if tag == "h" and len(args) == 1 and type(args[0]) is int:
        return handle(args[0])
    if tag not in SCALAR_TAGS or not args or any(type(a) is not str for a in args):
        raise ValueError("malformed value")
    return SCALAR_TAGS[tag](*args)


class Channel:
    """Length-prefixed JSON frames over one end of a socketpair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, msg: list) -> None:
        data = json.dumps(msg).encode()
        self.sock.sendall(struct.pack(">I", len(data)) + data)

    def recv(self) -> list:
        """One frame; EOFError when the peer is gone, ValueError when it is malformed."""
        chunks, need, header = [], 4, True
        while need:
            chunk = self.sock.recv(min(need, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            need -= len(chunk)
            if not need and header:
                need, header = struct.unpack(">I", b"".join(chunks))[0], False
                if need > FRAME_CAP:
                    raise ValueError("frame too large")
                chunks = []
        msg = json.loads(b"".join(chunks))
        if type(msg) is not list or not msg:
            raise ValueError("malformed frame")
        return msg


# -- the program's process: runs the untrusted code, answers the judge's requests ----------------


def builtins_untouched(snapshot: dict) -> bool:
    """Policy, checked by the program's own process, so it can only lower the score."""
    now = vars(builtins)
    return (
        sys.gettrace() is None
        and sys.getprofile() is None
        and _thread._count() == 0  # Python threads still running (0 once every one is joined)
        and len(now) == len(snapshot)
        and all(now.get(k) is v for k, v in snapshot.items())
    )


def serve(cfg: dict, root: bool, isolation: list[str], sock: socket.socket) -> None:
    """Run the program, then answer requests until the judge says `finish`; never returns."""
    fd = sock.fileno()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.closerange(3, fd)  # the result pipe and the rest of stdin stay with the judge
    os.closerange(fd + 1, 1 << 16)
    mine = []
    if "net" in isolation:  # pid 1 of a new pid namespace: a /proc that shows only this run
        try:
            if LIBC.unshare(CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
            mount("proc", "/proc", "proc", 0x2 | 0x4 | 0x8, None)  # nosuid, nodev, noexec
            mine.append("pid")
        except OSError as e:
            print(f"sandbox: no private /proc: {e}", file=sys.stderr)
    shed_userns(root, isolation)
    mine += lockdown(cfg, cfg["uid"], isolation)
    channel = Channel(sock)
    handles: list = []

    def handle(v: object) -> int:
        handles.append(v)
        return len(handles) - 1

    def reply(v: object) -> list:
        try:
            return ["ok", encode(v, handle)]
        except Exception:  # too deep, or an element that is not plain data
            return ["ok", ["h", handle(v)]]

    snapshot = dict(vars(builtins))
    ns = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(compile(cfg["program"], "<solution>", "exec", dont_inherit=True), ns)
        status = "ok" if builtins_untouched(snapshot) else "tampered"
    except BaseException:  # SystemExit and KeyboardInterrupt too: exiting early is a failure
        traceback.print_exc()
        status = "error"
    channel.send(["ready", status, mine])
    while status == "ok":
        try:
            op, *args = channel.recv()
        except (EOFError, ValueError):
            break
        try:
            if op == "names":
                answer = ["ok", ["d", [[n, reply(ns[n])[1]] for n in args[0] if n in ns]]]
            elif op == "call":
                fn, pos, kw = handles[args[0]], args[1], args[2]
                answer = reply(fn(*[decode(a, handles.__getitem__) for a in pos],
                                  **{k: decode(v, handles.__getitem__) for k, v in kw}))  # fmt: skip
            elif op == "getattr":
                answer = reply(getattr(handles[args[0]], args[1]))
            elif op == "getitem":
                answer = reply(handles[args[0]][decode(args[1], handles.__getitem__)])
            elif op == "iter":
                answer = ["ok", ["h", handle(iter(handles[args[0]]))]]
            elif op == "next":
                try:
                    answer = reply(next(handles[args[0]]))
                except StopIteration:
                    answer = ["stop"]
            else:  # "finish"
                answer = ["ok", builtins_untouched(snapshot)]
                status = "finished"
        except BaseException as e:
            try:
                answer = ["raise", type(e).__name__, str(e)[:1000]]
            except BaseException:
                answer = ["raise", "Exception", ""]
        channel.send(answer)
    os._exit(0)


# -- the judge: never runs program code; only values cross from the program's process ------------


class ProgramError(Exception):
    """An exception of the program's that is not a builtin one (or one the iteration protocol would
    misread: StopIteration raised from a call would silently end a test's loop)."""


class Judge:
    """The judge's side of the channel. Once the program's process misbehaves (`broken`), every
    further request fails and the verdict is that misbehaviour."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.broken: list[str] = []  # "tampered" or "crashed"

    def request(self, *msg: object) -> object:
        """One round trip; a reply that is not well-formed marks the run tampered, a lost peer crashed."""
        if self.broken:
            raise ProgramError("the program's process misbehaved")
        try:
            self.channel.send(list(msg))
            answer = self.channel.recv()
            if answer[0] == "ok" and len(answer) == 2:
                return decode(answer[1], lambda ident: Remote(self, ident))
            if answer == ["stop"] and msg[0] == "next":
                error: Exception = StopIteration()
            elif answer[0] == "raise" and len(answer) == 3 and all(type(a) is str for a in answer[1:]):
                error = rebuild(answer[1], answer[2])
            else:
                raise ValueError("malformed answer")
        except (EOFError, OSError):
            self.broken.append("crashed")
            raise ProgramError("the program's process is gone") from None
        except Exception:
            self.broken.append("tampered")
            raise ProgramError("the program's process misbehaved") from None
        raise error

    def names(self, wanted: list[str]) -> dict:
        """The program's values for the names the tests read: only names asked for, each once, as plain
        data or a handle. Anything more (a builtin's name, `__builtins__`, a dunder) is tampering: the
        tests would call the program's replacement and hand it their expected values."""
        try:
            answer = self.request("names", wanted)
        except ProgramError:
            return {}
        if type(answer) is not dict or not set(answer) <= set(wanted):
            self.broken.append("tampered")
            return {}
        return answer


def rebuild(name: str, message: str) -> Exception:
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, StopIteration):
        try:
            return cls(message)
        except Exception:
            pass
    return ProgramError(f"{name}: {message}")


class Remote:
    """An object of the program's that is not plain data: calls, attributes, items and iteration go
    to the program's process; comparing it, testing its truth, hashing or sizing it raise."""

    __slots__ = ("_id", "_judge")

    def __init__(self, judge: Judge, ident: int) -> None:
        self._judge = judge
        self._id = ident

    def __getattr__(self, name: str) -> object:
        return self._judge.request("getattr", self._id, name)

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self._judge.request("call", self._id, [encode(a, handle_id) for a in args],
                                   [[k, encode(v, handle_id)] for k, v in kwargs.items()])  # fmt: skip

    def __getitem__(self, key: object) -> object:
        return self._judge.request("getitem", self._id, encode(key, handle_id))

    def __iter__(self) -> object:
        return self._judge.request("iter", self._id)

    def __next__(self) -> object:
        return self._judge.request("next", self._id)

    def _opaque(self, *_: object) -> None:
        raise TypeError("an object of the program's (not plain data) cannot be compared or tested")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = _opaque


def handle_id(v: object) -> int:
    """What the judge may pass to the program: plain data (encoded by value) or the program's own handles."""
    if type(v) is Remote:
        return object.__getattribute__(v, "_id")
    raise TypeError(f"only plain data can be passed to the program, not {type(v).__name__}")


def run_tests(judge: Judge, units: list, names: dict) -> int:
    """Every unit in order, in a namespace whose builtins are the judge's own module: the program's
    names are added under their own names only, so nothing of the program's can stand in for one."""
    ns = {**names, "__name__": "tests", "__builtins__": builtins}
    passed = 0
    for kind, source in units:
        if judge.broken:
            break
        try:
            if kind == "assert":
                passed += bool(eval(compile(source, "<tests>", "eval", dont_inherit=True), ns))
            else:
                exec(compile(source, "<tests>", "exec", dont_inherit=True), ns)
                passed += 1
        except BaseException:
            pass
    return passed


def judge_run(cfg: dict, root: bool, isolation: list[str], sock: socket.socket) -> None:
    """Receive the tests and nonce, lock down, judge, write the one verdict line; never returns."""
    tests = read_part()  # only now: the forked program never had the tests or the nonce in memory
    write, nonce, result_fd = os.write, tests["nonce"], tests["result_fd"]
    shed_userns(root, isolation)
    isolation += lockdown(cfg, cfg["judge_uid"], isolation)
    not_dumpable()  # again: a change of uid resets it
    judge = Judge(Channel(sock))

    def report(status: str, passed: int = 0) -> None:
        """The verdict line, then stay: the run's orphans are re-parented to this process, so the host
        finds all of them below it until it kills the run (or its end of stdin closes)."""
        write(result_fd, f"{nonce} {status} {passed} {','.join(isolation)}\n".encode())
        with contextlib.suppress(OSError):
            os.read(0, 1)
        os._exit(0)

    try:
        ready = judge.channel.recv()
    except EOFError:
        report("crashed")
    except Exception:
        report("tampered")
    if len(ready) != 3 or ready[0] != "ready" or ready[1] not in ("ok", "error", "tampered"):
        report("tampered")
    if type(ready[2]) is list:  # what only the program's process could set up: its /proc, its filter
        mine = ("pid", "landlock", "seccomp", "uid")
        isolation += [m for m in ready[2] if m in mine and m not in isolation]
    if ready[1] != "ok":
        report(ready[1])
    passed = run_tests(judge, tests["units"], judge.names(tests["names"]))
    try:
        if not judge.broken and judge.request("finish") is not True:
            judge.broken.append("tampered")
    except ProgramError:
        pass
    report(judge.broken[0] if judge.broken else "done", passed)


def main() -> None:
    """One run: this process becomes the judge, its child the program's process."""
    cfg = read_part()
    root = os.geteuid() == 0
    isolation = namespaces(cfg, root)
    for module in cfg["imports"]:  # what the tests import, loaded before the program could touch files
        with contextlib.suppress(BaseException):
            __import__(module)
    not_dumpable()  # before the fork: the program starts running while the judge still sets up
    # PR_SET_CHILD_SUBREAPER: a daemonised grandchild is re-parented to the judge, not to init, so the
    # host still finds it below this process and counts its memory
    LIBC.prctl(ULONG(36), ULONG(1), ULONG(0), ULONG(0), ULONG(0))
    judge_end, program_end = socket.socketpair()
    if os.fork() == 0:
        judge_end.close()
        serve(cfg, root, isolation, program_end)
    program_end.close()
    judge_run(cfg, root, isolation, judge_end)


# -- the fork server: started once, it forks a fresh child per run, so a run starts without an
# interpreter start-up, imports or compiling this file. It never reads a run's input itself.

RESULT_FD = 3  # where a run finds its verdict pipe


def start_run(control: socket.socket, fds: list[int]) -> int:
    """Fork one run on the host's pipes (stdin, output, verdict) and work dir; the child never returns."""
    pid = os.fork()
    if pid:
        return pid
    try:
        # dumpable again until `main` makes it not: a non-dumpable process's /proc/self belongs to root,
        # and as another uid it could not write its user namespace's uid_map
        LIBC.prctl(ULONG(4), ULONG(1), ULONG(0), ULONG(0), ULONG(0))
        os.setsid()
        stdin, output, result, workdir = fds  # received after 0-2 and the control socket: none below 3
        os.fchdir(workdir)
        os.dup2(stdin, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.dup2(result, RESULT_FD)
        control.detach()
        os.closerange(RESULT_FD + 1, 1 << 16)  # the control socket and the fds as they came
        main()
    except BaseException:
        traceback.print_exc()  # on the run's output: the verdict is `crashed`
    finally:
        os._exit(5)


def serve_runs(control: socket.socket) -> None:
    """`--serve FD`: on each `run` message (four fds), fork a run and answer its pid; a run's child stays
    unreaped (so its pid cannot be reused) until the host, done killing its tree, sends `reap PID`."""
    not_dumpable()
    unreaped: set[int] = set()
    while True:
        for pid in list(unreaped):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            unreaped.discard(pid)
        if unreaped and not select.select([control], [], [], 0.05)[0]:
            continue
        msg, fds, _, _ = socket.recv_fds(control, 64, 4)
        if not msg:  # the host is gone
            os._exit(0)
        if msg == b"run" and len(fds) == 4:
            pid = start_run(control, fds)
            control.sendall(struct.pack(">i", pid))
        elif msg.startswith(b"reap ") and msg[5:].isdigit():
            unreaped.add(int(msg[5:]))
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--serve"] or len(sys.argv) != 3:
        sys.exit("usage: program.py --serve FD (the control socket grpo_rlvr.sandbox.server passes)")
    serve_runs(socket.socket(fileno=int(sys.argv[2])))
