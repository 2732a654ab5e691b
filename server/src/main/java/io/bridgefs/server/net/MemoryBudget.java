package io.bridgefs.server.net;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The server-wide budget for request and reply bytes (every connection of both paths). A reservation
 * that does not fit is refused; the connection then stops reading and asks to be called back
 * ({@link #whenAvailable}) once bytes are released. One reservation is always granted when nothing is
 * reserved, so a single request larger than the budget cannot wait forever.
 */
public final class MemoryBudget {
    private final long limit;
    private final AtomicLong used = new AtomicLong();
    private final ConcurrentLinkedQueue<Runnable> waiters = new ConcurrentLinkedQueue<>();

    public MemoryBudget(long limit) {
        this.limit = limit;
    }

    public boolean tryReserve(long n) {
        while (true) {
            long u = used.get();
            if (u > 0 && u + n > limit) return false;
            if (used.compareAndSet(u, u + n)) return true;
        }
    }

    public void release(long n) {
        used.addAndGet(-n);
        wakeWaiters();
    }

    /**
     * Runs {@code r} (once) when bytes are next released, or at once if {@code needed} bytes fit now (a
     * release may have happened since the caller's refusal). Never at once otherwise: a waiter that still
     * does not fit would register again and spin.
     */
    public void whenAvailable(long needed, Runnable r) {
        waiters.add(r);
        long u = used.get();
        if (u == 0 || u + needed <= limit) wakeWaiters();
    }

    private void wakeWaiters() {
        Runnable r;
        while ((r = waiters.poll()) != null) r.run();
    }

    public long used() { return used.get(); }

    public long limit() { return limit; }
}
