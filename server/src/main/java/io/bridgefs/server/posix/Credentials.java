package io.bridgefs.server.posix;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Per-thread file-system credentials (Linux keeps fsuid, fsgid and supplementary groups per thread at
 * the system-call level). setfsuid/setfsgid through glibc stay per thread; glibc's setgroups would
 * change every thread of the process, so the groups are set with the raw system call. A 9P request under
 * {@code security=passthrough} runs as the attaching user: the host's own permission checks apply.
 */
public final class Credentials {
    private static final int SYS_SETGROUPS = 116, SYS_SETRESUID = 117, SYS_SETRESGID = 119;   // x86_64

    private interface LibC extends Library {
        int getgroups(int size, int[] list) throws LastErrorException;
        int geteuid();
        int getegid();
        long syscall(long number, long a, long b, long c) throws LastErrorException;
    }

    private static final LibC LIBC = Native.load("c", LibC.class);

    /**
     * The calls every request under passthrough makes (eight: groups, gid and uid, their check, and back),
     * bound by JNA's direct mapping like {@code Posix}'s hot calls: without the interface mapping's proxy
     * and per-call argument conversion.
     */
    private static final class Hot {
        static native int setfsuid(int uid);
        static native int setfsgid(int gid);
        static native long syscall(long number, long size, int[] list) throws LastErrorException;

        static {
            Native.register(Hot.class, com.sun.jna.NativeLibrary.getInstance("c"));
        }
    }
    private static final int[] SERVER_GROUPS = serverGroups();
    /** The server runs as root (fsuid 0 already is what a root request needs). */
    public static final boolean SERVER_IS_ROOT = LIBC.geteuid() == 0;
    private static final int SERVER_UID = LIBC.geteuid(), SERVER_GID = LIBC.getegid();
    /**
     * The server's capabilities: while a request acts as a guest user only CAP_SETUID/CAP_SETGID (to switch
     * back) stay effective. Leaving fsuid 0 makes the kernel drop only the file-system capabilities
     * (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, ...): a root server's thread acting as uid 1000 kept
     * CAP_SYS_ADMIN and CAP_SETFCAP, with which a user (or a squashed root) could set trusted.* xattrs, or
     * security.capability on any host file. So root narrows too, as a server with capabilities
     * (systemd's AmbientCapabilities, or --user) always did.
     */
    private static final long[] CAPS = Capabilities.getOrNone();
    private static final long PERMITTED = CAPS[1], INHERITABLE = CAPS[2];
    private static final long SWITCHING = Capabilities.bit(Capabilities.SETUID) | Capabilities.bit(Capabilities.SETGID);
    private static final ConcurrentHashMap<Integer, Identity> IDENTITIES = new ConcurrentHashMap<>();
    /** The identity each thread acts as since {@link #become}, null while it is the server itself. */
    private static final ThreadLocal<Identity> HELD = new ThreadLocal<>();
    private static volatile long loaded;

    /** A host user as the kernel checks it: uid, primary gid, supplementary groups. */
    public record Identity(int uid, int gid, int[] groups) {}

    private Credentials() {}

    private static int[] serverGroups() {
        try {
            int n = LIBC.getgroups(0, null);
            int[] g = new int[n];
            LIBC.getgroups(n, g);
            return g;
        } catch (LastErrorException | UnsatisfiedLinkError e) {
            return new int[0];
        }
    }

    /** Whether this process may take other users' credentials (root, or CAP_SETUID/CAP_SETGID). */
    public static boolean privileged() {
        try {
            become(new Identity(65534, 65534, new int[] {65534}));
            restore();
            return Hot.setfsuid(-1) == SERVER_UID;
        } catch (IOException e) {
            restore();
            return false;
        }
    }

    /** The server's own uid and gid (after any --user drop). */
    public static int serverUid() { return SERVER_UID; }

    public static int serverGid() { return SERVER_GID; }

    /**
     * Drops the calling thread to {@code id} for good (real, effective and saved ids; raw system calls,
     * so only this thread: used right before execve), keeping {@code keep} permitted, inheritable and
     * ambient so the executed program holds exactly those.
     */
    public static void dropTo(Identity id, long keep) throws IOException {
        try {
            Capabilities.keepAcrossSetuid();
            Hot.syscall(SYS_SETGROUPS, id.groups().length, id.groups().length == 0 ? null : id.groups());
            LIBC.syscall(SYS_SETRESGID, id.gid(), id.gid(), id.gid());
            LIBC.syscall(SYS_SETRESUID, id.uid(), id.uid(), id.uid());
            Capabilities.set(keep, keep, keep);
            Capabilities.ambient(keep);
        } catch (LastErrorException e) {
            throw new Posix.ErrnoException("dropping to uid " + id.uid(), e.getErrorCode());
        }
    }

    /**
     * The calling thread acts as {@code id} for file-system checks until {@link #restore}, whatever it
     * acted as before (every id, group and capability is set, none is relative to the last).
     */
    public static void become(Identity id) throws IOException {
        try {
            Hot.syscall(SYS_SETGROUPS, id.groups().length, id.groups().length == 0 ? null : id.groups());
        } catch (LastErrorException e) {
            throw new Posix.ErrnoException("setgroups", e.getErrorCode());
        }
        Hot.setfsgid(id.gid());
        Hot.setfsuid(id.uid());
        if (Hot.setfsuid(-1) != id.uid() || Hot.setfsgid(-1) != id.gid()) {
            restore();
            throw new Posix.ErrnoException("setfsuid", 1);
        }
        if (PERMITTED != 0) {
            try {
                Capabilities.set(id.uid() == 0 ? PERMITTED : SWITCHING & PERMITTED, PERMITTED, INHERITABLE);   // no capget per request
            } catch (LastErrorException e) {
                restore();
                throw new Posix.ErrnoException("capset", e.getErrorCode());
            }
        }
        HELD.set(id);
    }

    /**
     * Acts as {@code id}, switching only if the thread does not act as that very identity already: a
     * thread that answers request after request of one user keeps its credentials between them (eight
     * system calls a request saved). Identities are compared as the objects {@link #identity} hands out,
     * so one looked up again (every 30 s: the user's groups may have changed) switches anew.
     */
    public static void hold(Identity id) throws IOException {
        if (HELD.get() != id) become(id);
    }

    /** The server's own credentials again, if the thread acts as someone else: a thread-local read otherwise. */
    public static void serverAgain() {
        if (HELD.get() != null) restore();
    }

    /** Work that may fail with an I/O error. */
    public interface IoCall<T> {
        T call() throws IOException;
    }

    /**
     * Runs {@code work} as the server, then acts as whom the thread acted as before again: the server's
     * own work done on a thread that serves a user (opening a file's one shared backing store, writing
     * cached pages back). If the switch back fails, the error ends the user's request.
     */
    public static <T> T asServer(IoCall<T> work) throws IOException {
        Identity id = HELD.get();
        if (id == null) return work.call();
        restore();
        try {
            return work.call();
        } finally {
            become(id);
        }
    }

    /** Whom the calling thread acts as, or null for the server itself. */
    public static Identity held() {
        return HELD.get();
    }

    /** The calling thread's fsuid as the kernel has it (for tests: what {@link #held} says, checked). */
    public static int fsuid() {
        return Hot.setfsuid(-1);
    }

    /** Back to the server's own credentials. */
    public static void restore() {
        HELD.set(null);
        Hot.setfsuid(SERVER_UID);
        Hot.setfsgid(SERVER_GID);
        if (PERMITTED != 0) {
            try {
                Capabilities.set(PERMITTED, PERMITTED, INHERITABLE);
            } catch (LastErrorException e) {
                // cannot happen (raising within the permitted set); the next become() narrows again anyway
            }
        }
        try {
            Hot.syscall(SYS_SETGROUPS, SERVER_GROUPS.length, SERVER_GROUPS.length == 0 ? null : SERVER_GROUPS);
        } catch (LastErrorException e) {
            // nothing more to do: fsuid 0 is back, and groups only ever widen root's checks
        }
    }

    /**
     * The host's view of {@code uid} from /etc/passwd and /etc/group (re-read at most every 30 s): its
     * primary group and the groups that list its name. A uid the host does not know gets gid 65534
     * (nogroup) and no supplementary groups.
     */
    public static Identity identity(int uid) {
        if (stale()) {
            IDENTITIES.clear();
            loaded = System.nanoTime();
        }
        return IDENTITIES.computeIfAbsent(uid, Credentials::lookup);
    }

    /**
     * {@link #identity} if it is at hand without reading a file (looked up less than 30 s ago), else
     * null: for a thread that must not wait on the disk.
     */
    public static Identity identityIfKnown(int uid) {
        return stale() ? null : IDENTITIES.get(uid);
    }

    /** The identities were read over 30 s ago: the host's users and groups may have changed since. */
    private static boolean stale() {
        return System.nanoTime() - loaded > 30_000_000_000L;
    }

    private static Identity lookup(int uid) {
        String name = null;
        int gid = 65534;
        try {
            for (String l : Files.readAllLines(Path.of("/etc/passwd"))) {
                String[] f = l.split(":");
                if (f.length > 3 && f[2].equals(Integer.toString(uid))) {
                    name = f[0];
                    gid = Integer.parseInt(f[3]);
                    break;
                }
            }
            List<Integer> groups = new ArrayList<>();
            groups.add(gid);
            if (name != null) {
                for (String l : Files.readAllLines(Path.of("/etc/group"))) {
                    String[] f = l.split(":", -1);
                    if (f.length < 4 || f[3].isEmpty()) continue;
                    for (String member : f[3].split(",")) {
                        if (member.equals(name)) {
                            int g = Integer.parseInt(f[2]);
                            if (!groups.contains(g)) groups.add(g);
                        }
                    }
                }
            }
            return new Identity(uid, gid, groups.stream().mapToInt(Integer::intValue).toArray());
        } catch (IOException | RuntimeException e) {
            return new Identity(uid, 65534, new int[] {65534});
        }
    }
}
