package io.bridgefs.server.posix;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Memory;
import com.sun.jna.Native;
import java.util.ArrayList;
import java.util.List;

/**
 * Linux capabilities of the calling thread (capget/capset, version 3, raw system calls: they act on
 * one thread, as the kernel keeps them) and the ambient set that survives execve. Only what the server
 * needs: dropping to a user while keeping the capabilities its 9P exports' models need, and narrowing a
 * thread's effective set while a request runs as a guest user.
 */
public final class Capabilities {
    public static final int CHOWN = 0, DAC_OVERRIDE = 1, DAC_READ_SEARCH = 2, FOWNER = 3, FSETID = 4, SETGID = 6, SETUID = 7,
            NET_BIND_SERVICE = 10, MKNOD = 27;
    private static final String[] NAMES = new String[64];
    static {
        NAMES[CHOWN] = "CAP_CHOWN";
        NAMES[DAC_OVERRIDE] = "CAP_DAC_OVERRIDE";
        NAMES[DAC_READ_SEARCH] = "CAP_DAC_READ_SEARCH";
        NAMES[FOWNER] = "CAP_FOWNER";
        NAMES[FSETID] = "CAP_FSETID";
        NAMES[SETGID] = "CAP_SETGID";
        NAMES[SETUID] = "CAP_SETUID";
        NAMES[NET_BIND_SERVICE] = "CAP_NET_BIND_SERVICE";
        NAMES[MKNOD] = "CAP_MKNOD";
    }
    private static final int SYS_CAPGET = 125, SYS_CAPSET = 126;   // x86_64
    private static final int VERSION_3 = 0x20080522;
    private static final int PR_SET_KEEPCAPS = 8, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_RAISE = 2;

    private interface LibC extends Library {
        long syscall(long number, Memory header, Memory data) throws LastErrorException;
        int prctl(int option, long a2, long a3, long a4, long a5) throws LastErrorException;
    }

    private static final LibC LIBC = Native.load("c", LibC.class);

    private Capabilities() {}

    public static long bit(int cap) { return 1L << cap; }

    /** The set of the capabilities in {@code mask}, by name (e.g. "CAP_SETUID CAP_SETGID"), or "none". */
    public static String names(long mask) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < 64; i++) if ((mask & (1L << i)) != 0) out.add(NAMES[i] != null ? NAMES[i] : "cap" + i);
        return out.isEmpty() ? "none" : String.join(" ", out);
    }

    /** {effective, permitted, inheritable} of the calling thread. */
    public static long[] get() {
        Memory h = header();
        Memory d = new Memory(24);
        d.clear();
        LIBC.syscall(SYS_CAPGET, h, d);
        return new long[] {join(d, 0), join(d, 4), join(d, 8)};
    }

    /** {effective, permitted, inheritable}, or none at all where capget fails. */
    public static long[] getOrNone() {
        try {
            return get();
        } catch (LastErrorException | UnsatisfiedLinkError e) {
            return new long[3];
        }
    }

    public static long permitted() {
        return getOrNone()[1];
    }

    /**
     * capset through JNA's direct mapping, with Java arrays for its two structs: a passthrough request's
     * switch to a user and back calls it twice (two JNA {@code Memory} per call through the interface
     * mapping made become+restore 29 us here, 19 this way).
     */
    private static final class Hot {
        static native long syscall(long number, int[] header, int[] data) throws LastErrorException;

        static {
            Native.register(Hot.class, com.sun.jna.NativeLibrary.getInstance("c"));
        }
    }

    /** Sets the calling thread's three sets (permitted may only shrink; effective and inheritable within it). */
    public static void set(long effective, long permitted, long inheritable) throws LastErrorException {
        // data[0]: the low 32 bits of each set, data[1]: the high 32 bits
        int[] data = {(int) effective, (int) permitted, (int) inheritable,
                (int) (effective >>> 32), (int) (permitted >>> 32), (int) (inheritable >>> 32)};
        Hot.syscall(SYS_CAPSET, new int[] {VERSION_3, 0}, data);
    }

    /** Keep permitted capabilities across the coming setresuid away from root (this thread). */
    public static void keepAcrossSetuid() throws LastErrorException {
        LIBC.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
    }

    /** Raises {@code mask} into the ambient set: kept, permitted and effective after execve as a non-root user. */
    public static void ambient(long mask) throws LastErrorException {
        for (int i = 0; i < 64; i++) if ((mask & (1L << i)) != 0) LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0);
    }

    private static Memory header() {
        Memory h = new Memory(8);
        h.setInt(0, VERSION_3);
        h.setInt(4, 0);        // this thread
        return h;
    }

    private static long join(Memory d, int off) {
        return (d.getInt(off) & 0xFFFFFFFFL) | ((long) d.getInt(12 + off) << 32);
    }
}
