package io.bridgefs.server.posix;

import com.sun.jna.Memory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A getdents64 buffer, read through a ByteBuffer over its memory: each field of an entry is a plain
 * load, where JNA's {@code Memory.getLong}/{@code getByte} is a native call each (a 200-entry 9P
 * readdir made some 2,000 of them). Entries are linux_dirent64: d_ino at 0, d_off at 8, d_reclen at
 * 16, d_type at 18, the NUL-terminated name from 19. One per thread ({@link #mine}).
 */
public final class Dirents {
    private static final ThreadLocal<Dirents> MINE = ThreadLocal.withInitial(() -> new Dirents(64 * 1024));
    private final Memory memory;
    private final ByteBuffer view;

    private Dirents(int size) {
        memory = new Memory(size);
        view = memory.getByteBuffer(0, size).order(ByteOrder.nativeOrder());
    }

    /** The calling thread's buffer (64 KiB). */
    public static Dirents mine() {
        return MINE.get();
    }

    /**
     * The next entries of {@code fd}'s directory stream, at most {@code max} bytes of them (at least 4 KiB,
     * so the longest name fits): the bytes filled, 0 at the end. Asking for no more than the caller can use
     * keeps a reply of 8 KiB from reading 64 KiB of a large directory's entries each time.
     */
    public int read(int fd, int max) throws Posix.ErrnoException {
        return Posix.getdents64(fd, memory, Math.min(memory.size(), Math.max(4096, max)));
    }

    public long ino(int pos) { return view.getLong(pos); }

    public long off(int pos) { return view.getLong(pos + 8); }

    public int reclen(int pos) { return view.getShort(pos + 16) & 0xFFFF; }

    public int type(int pos) { return view.get(pos + 18) & 0xFF; }

    /** The entry's name: its bytes up to the NUL. */
    public byte[] name(int pos) {
        int max = reclen(pos) - 19;
        int len = 0;
        while (len < max && view.get(pos + 19 + len) != 0) len++;
        byte[] out = new byte[len];
        view.get(pos + 19, out);
        return out;
    }

    /** Whether the entry is "." or "..". */
    public boolean dots(int pos) {
        if (view.get(pos + 19) != '.') return false;
        byte next = view.get(pos + 20);
        return next == 0 || next == '.' && view.get(pos + 21) == 0;
    }
}
