package io.bridgefs.server.p9;

import io.bridgefs.server.posix.Posix;
import io.bridgefs.server.posix.Posix.Stat;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

/**
 * security=mapped: the guest's ownership, mode and device number of a host file kept in the xattrs
 * QEMU's {@code security_model=mapped-xattr} uses, laid out as QEMU writes them ({@code user.virtfs.uid},
 * {@code .gid} and {@code .mode} as little-endian 32-bit values, {@code .rdev} as little-endian 64-bit),
 * so a tree prepared by either server reads the same in the other. On the host every node the guest
 * creates is a directory (0700) or a regular file (0600) of the server's user: device nodes, FIFOs,
 * sockets and symlinks (the file holds the target) exist only as the guest sees them.
 */
public final class Mapped {
    static final String PREFIX = "user.virtfs.";
    static final String UID = PREFIX + "uid", GID = PREFIX + "gid", MODE = PREFIX + "mode", RDEV = PREFIX + "rdev";
    static final int FILE_MODE = 0600, DIR_MODE = 0700;
    private static final int EOPNOTSUPP = 95;

    private Mapped() {}

    /** Refuses an export directory whose file system keeps no user xattrs (mapped could not keep anything). */
    public static void checkSupported(Path dir) throws IOException {
        try {
            Posix.getxattr(dir.toString(), MODE);
        } catch (Posix.ErrnoException e) {
            if (e.errno() == EOPNOTSUPP) {
                throw new IOException("9P export " + dir + ": security=mapped needs user xattrs, which this file system does not keep");
            }
            throw e;
        }
    }

    /**
     * The host's stat of the inode at {@code procPath} with the guest's view laid over it. Only
     * directories and regular files carry user xattrs; anything else (or a file without them, made
     * outside the guest) reads as the host has it, as in QEMU.
     */
    static Stat overlay(String procPath, Stat st) throws IOException {
        if (!st.isDir() && !st.isRegular()) return st;
        // one system call each (these values are 4 or 8 bytes): this runs for every walk and getattr
        byte[] u = Posix.getxattrSmall(procPath, UID, 8), g = Posix.getxattrSmall(procPath, GID, 8);
        byte[] m = Posix.getxattrSmall(procPath, MODE, 8), r = Posix.getxattrSmall(procPath, RDEV, 8);
        if (u == null && g == null && m == null && r == null) return st;
        int uid = u != null && u.length >= 4 ? le(u).getInt() : st.uid();
        int gid = g != null && g.length >= 4 ? le(g).getInt() : st.gid();
        int mode = m != null && m.length >= 4 ? le(m).getInt() : st.mode();
        if (st.isDir()) mode = Posix.S_IFDIR | (mode & 07777);          // a directory can only ever be one
        else if ((mode & Posix.S_IFMT) == Posix.S_IFDIR || (mode & Posix.S_IFMT) == 0) mode = Posix.S_IFREG | (mode & 07777);
        long rdev = r != null && r.length >= 8 ? le(r).getLong() : st.rdev();
        return new Stat(st.dev(), st.ino(), st.nlink(), mode, uid, gid, rdev, st.size(), st.blksize(), st.blocks(),
                st.atimeSec(), st.atimeNsec(), st.mtimeSec(), st.mtimeNsec(), st.ctimeSec(), st.ctimeNsec());
    }

    /** Records the guest's view of the inode at {@code procPath}; a field of -1 is left as it is. */
    static void set(String procPath, int uid, int gid, int mode, long rdev) throws IOException {
        if (uid != -1) Posix.setxattr(procPath, UID, le32(uid), 0);
        if (gid != -1) Posix.setxattr(procPath, GID, le32(gid), 0);
        if (mode != -1) Posix.setxattr(procPath, MODE, le32(mode), 0);
        if (rdev != -1) Posix.setxattr(procPath, RDEV, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(rdev).array(), 0);
    }

    /** Whether the guest names one of the server's own xattrs (hidden from it and refused). */
    static boolean reserved(String name) {
        return name.startsWith(PREFIX);
    }

    /** Which xattr names a guest may set or read under mapped: user.* only (never security.*, trusted.* or ACLs on the host). */
    static boolean allowed(String name) {
        return name.startsWith("user.") && !reserved(name);
    }

    /** A listxattr result without the server's own names. */
    static byte[] hide(byte[] list) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(list.length);
        int start = 0;
        for (int i = 0; i < list.length; i++) {
            if (list[i] != 0) continue;
            String name = new String(list, start, i - start, java.nio.charset.StandardCharsets.UTF_8);
            if (!reserved(name)) out.write(list, start, i - start + 1);
            start = i + 1;
        }
        return out.toByteArray();
    }

    private static ByteBuffer le(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static byte[] le32(int v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }
}
