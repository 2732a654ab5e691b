package io.bridgefs.server.p9;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.server.cache.FileKey;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * POSIX byte-range locks shared by every 9P client of a host file (keyed by device and inode). An owner
 * is (session, client id, process id), as the Linux client identifies a lock holder. Ranges are
 * inclusive; length 0 means "to the end of the file". Non-blocking: a conflict answers BLOCKED and the
 * client retries, as the kernel's v9fs does for F_SETLKW. Bounded: a connection holds at most
 * {@link #PER_SESSION} locks and all together {@link #TOTAL}; a lock past either is refused with
 * LOCK_ERROR (the client's ENOLCK), so that a client locking every other byte of a file can neither
 * exhaust the heap nor make every lock request scan millions.
 */
final class LockTable {
    static final int PER_SESSION = 4096;
    static final int TOTAL = 65536;
    /** Longest client id kept with a lock (the Linux client sends its host name, at most 64 bytes). */
    static final int MAX_CLIENT_ID = 255;

    record Owner(Object session, String clientId, int procId) {}

    record Lock(Owner owner, int type, long start, long end) {
        boolean overlaps(long s, long e) { return start <= e && s <= end; }
    }

    /** The holder of a conflicting lock, for Rgetlock. */
    record Holder(int type, long start, long length, int procId, String clientId) {}

    private final Map<FileKey, List<Lock>> locks = new HashMap<>();
    private final Map<Object, Integer> perSession = new HashMap<>();
    private int total;

    static long end(long start, long length) {
        if (length == 0) return Long.MAX_VALUE;
        long e = start + length - 1;
        return e < start ? Long.MAX_VALUE : e;
    }

    /** Applies a lock or unlock; returns a P9.LOCK_* status. */
    synchronized int lock(FileKey file, Owner owner, int type, long start, long length) {
        if (start < 0) return P9.LOCK_ERROR;
        long end = end(start, length);
        List<Lock> list = locks.computeIfAbsent(file, k -> new ArrayList<>());
        if (type != P9.LOCK_TYPE_UNLCK) {
            for (Lock l : list) {
                if (!l.owner.equals(owner) && l.overlaps(start, end) && (type == P9.LOCK_TYPE_WRLCK || l.type == P9.LOCK_TYPE_WRLCK)) {
                    return P9.LOCK_BLOCKED;
                }
            }
        }
        // drop (or trim) this owner's locks in the range, then add the new one
        List<Lock> keep = new ArrayList<>();
        for (Lock l : list) {
            if (!l.owner.equals(owner) || !l.overlaps(start, end)) {
                keep.add(l);
                continue;
            }
            if (l.start < start) keep.add(new Lock(owner, l.type, l.start, start - 1));
            if (l.end > end) keep.add(new Lock(owner, l.type, end + 1, l.end));
        }
        if (type != P9.LOCK_TYPE_UNLCK) keep.add(new Lock(owner, type, start, end));
        int delta = keep.size() - list.size();       // only this owner's locks changed
        int held = perSession.getOrDefault(owner.session(), 0);
        if (delta > 0 && (held + delta > PER_SESSION || total + delta > TOTAL)) {
            if (list.isEmpty()) locks.remove(file);
            return P9.LOCK_ERROR;
        }
        total += delta;
        if (held + delta == 0) perSession.remove(owner.session());
        else perSession.put(owner.session(), held + delta);
        if (keep.isEmpty()) locks.remove(file);
        else locks.put(file, keep);
        return P9.LOCK_SUCCESS;
    }

    /** The first lock that would conflict with the request, or null. */
    synchronized Holder test(FileKey file, Owner owner, int type, long start, long length) {
        long end = end(start, length);
        for (Lock l : locks.getOrDefault(file, List.of())) {
            if (!l.owner.equals(owner) && l.overlaps(start, end) && (type == P9.LOCK_TYPE_WRLCK || l.type == P9.LOCK_TYPE_WRLCK)) {
                long len = l.end == Long.MAX_VALUE ? 0 : l.end - l.start + 1;
                return new Holder(l.type, l.start, len, l.owner.procId(), l.owner.clientId());
            }
        }
        return null;
    }

    /** Drops every lock of a session (its connection ended). */
    synchronized void releaseSession(Object session) {
        Integer held = perSession.remove(session);
        if (held == null) return;
        total -= held;
        for (Iterator<Map.Entry<FileKey, List<Lock>>> it = locks.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<FileKey, List<Lock>> e = it.next();
            e.getValue().removeIf(l -> l.owner.session() == session);
            if (e.getValue().isEmpty()) it.remove();
        }
    }

    /** Locks held by all sessions (for tests). */
    synchronized int total() {
        return total;
    }
}
