package io.bridgefs.server.p9;

import io.bridgefs.server.posix.Posix;

/**
 * The descriptors one connection's fids and opens hold, counted against the server's budgets (see
 * {@link P9ServerContext}): each fid's O_PATH descriptor, reclaimed when the budget is spent from the
 * least recently used idle, unopened fid (reopened by path and checked when the fid is used again), and
 * the descriptors its opens hold (a budget of their own), which cannot be reclaimed. Guarded by the
 * owning {@link P9Ops}'s lock, except {@link #held}, which other connections read for their fair share.
 */
final class FidDescriptors {
    private final P9ServerContext server;
    /** Fids holding a descriptor, least recently used first. */
    private final java.util.LinkedHashMap<Fid, Boolean> withDescriptor = new java.util.LinkedHashMap<>(64, 0.75f, true);
    private int openUnits;
    private volatile int held;

    FidDescriptors(P9ServerContext server) {
        this.server = server;
    }

    /** Fids' descriptors held, of the server's budget for them (read without the lock; opens have their own). */
    int held() {
        return held;
    }

    private void counted() {
        held = withDescriptor.size();
    }

    /** Counts a new fid's descriptor against the budget (see {@link #reserve}); false if it cannot be had. */
    boolean hold(Fid f) {
        if (!reserve()) return false;
        track(f);
        return true;
    }

    /**
     * Takes one descriptor from the server's budget, first closing descriptors of idle fids of this
     * connection if the budget is spent. False if nothing could be reclaimed.
     */
    boolean reserve() {
        while (!server.reserveFid()) {
            if (!reclaimOne()) return false;
        }
        return true;
    }

    /** A fid now holds a counted descriptor and may be reclaimed once idle. */
    void track(Fid f) {
        f.counted = true;
        withDescriptor.put(f, Boolean.TRUE);
        counted();
    }

    /** A fid was used: it is the most recently used. */
    void used(Fid f) {
        withDescriptor.get(f);
    }

    /** Closes the descriptor of the least recently used idle, unopened fid; false if there is none. */
    boolean reclaimOne() {
        for (Fid f : withDescriptor.keySet()) {
            if (f.reclaimable()) {
                f.handle = Posix.fileHandle(f.fd);     // to check a later reopen against
                drop(f);
                return true;
            }
        }
        return false;
    }

    /** Closes a fid's descriptor and gives it back to the budget. */
    void drop(Fid f) {
        withDescriptor.remove(f);
        counted();
        if (f.fd >= 0) Posix.close(f.fd);
        f.fd = -1;
        if (f.counted) server.releaseFid();
        f.counted = false;
    }

    /** An open of {@code f} holds {@code n} more descriptors, from the budget of opens ({@link P9ServerContext#holdOpens}). */
    void holdOpen(Fid f, int n) throws P9Error {
        if (n == 0) return;
        server.holdOpens(openUnits, n);
        f.openHeld += n;
        openUnits += n;
    }

    /** The descriptors {@code f}'s open held go back to the budget. */
    void releaseOpen(Fid f) {
        server.releaseOpens(f.openHeld);
        openUnits -= f.openHeld;
        f.openHeld = 0;
    }
}
