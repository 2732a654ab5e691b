package io.bridgefs.server.p9;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.server.cache.FileKey;
import org.junit.jupiter.api.Test;

/**
 * Byte-range locks are bounded: a client locking every other byte of a file stops at
 * {@link LockTable#PER_SESSION} (LOCK_ERROR, the client's ENOLCK), others still lock, and what a
 * connection held is given back by unlocking or by its end.
 */
class LockTableTest {
    @Test
    void locksPerConnectionAndInAllAreBounded() {
        LockTable t = new LockTable();
        FileKey file = new FileKey(1, 2);
        LockTable.Owner hog = new LockTable.Owner("hog", "guest", 7);
        int held = 0;
        while (t.lock(file, hog, P9.LOCK_TYPE_WRLCK, 2L * held, 1) == P9.LOCK_SUCCESS) held++;
        assertEquals(LockTable.PER_SESSION, held);
        assertEquals(P9.LOCK_ERROR, t.lock(file, hog, P9.LOCK_TYPE_RDLCK, 1L << 40, 1), "refused on another range too");
        assertEquals(P9.LOCK_SUCCESS, t.lock(file, hog, P9.LOCK_TYPE_RDLCK, 0, 1), "changing a lock it holds adds none");
        LockTable.Owner other = new LockTable.Owner("other", "guest2", 8);
        assertEquals(P9.LOCK_SUCCESS, t.lock(file, other, P9.LOCK_TYPE_WRLCK, 1, 1), "another connection still locks (byte 1 is free)");
        assertEquals(P9.LOCK_BLOCKED, t.lock(file, other, P9.LOCK_TYPE_WRLCK, 2, 1), "and conflicts are still seen");
        // unlocking everything from byte 100 on gives back the locks past it
        assertEquals(P9.LOCK_SUCCESS, t.lock(file, hog, P9.LOCK_TYPE_UNLCK, 100, 0));
        assertEquals(50 + 1, t.total());
        assertEquals(P9.LOCK_SUCCESS, t.lock(file, hog, P9.LOCK_TYPE_WRLCK, 1L << 40, 1), "room again");
        t.releaseSession("hog");
        assertEquals(1, t.total(), "the connection's end gives back all of its locks");
        t.releaseSession("other");
        assertEquals(0, t.total());
    }

    @Test
    void allConnectionsTogetherStopAtTheTotal() {
        LockTable t = new LockTable();
        int sessions = LockTable.TOTAL / LockTable.PER_SESSION;
        for (int s = 0; s < sessions; s++) {
            LockTable.Owner o = new LockTable.Owner("s" + s, "c", s);
            for (int i = 0; i < LockTable.PER_SESSION; i++) {
                assertEquals(P9.LOCK_SUCCESS, t.lock(new FileKey(s, i), o, P9.LOCK_TYPE_RDLCK, 0, 1));
            }
        }
        assertEquals(LockTable.TOTAL, t.total());
        assertEquals(P9.LOCK_ERROR, t.lock(new FileKey(99, 0), new LockTable.Owner("late", "c", 1), P9.LOCK_TYPE_RDLCK, 0, 1));
    }
}
