package io.bridgefs.server.net;

import io.bridgefs.protocol.FrameGate;
import io.netty.channel.Channel;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayDeque;
import java.util.function.Consumer;
import java.util.function.ToLongFunction;

/**
 * Flow control of one connection, confined to its event loop. Every decoded request is admitted only
 * when it fits the connection's limits (requests and bytes in flight) and the server's
 * {@link MemoryBudget}; its cost (the bytes it holds and the reply it will make) is released when its
 * reply has been taken by the socket. A request that does not fit waits here, undispatched, and the
 * connection stops reading: the only requests ever buffered are the few already decoded from bytes
 * read before reading stopped. A client that does not read its replies therefore stalls itself, and
 * nothing it sends is buffered further. It is also the connection's {@link FrameGate}: a large frame is
 * counted against the budget before its bytes are read (a write keeps that as part of its cost,
 * {@code prepaid}), and while the budget has no room for it the connection is not read.
 */
public final class Admission<T> implements FrameGate, ConnectionGuard.Flow {
    private final Channel channel;
    private final MemoryBudget budget;
    private final int maxRequests;
    private final long maxBytes;
    private final ToLongFunction<T> cost;
    private final ToLongFunction<T> prepaid;
    private final Consumer<T> dispatch;
    private final ArrayDeque<T> waiting = new ArrayDeque<>();
    private int requests;
    private long bytes;
    private boolean waitingForBudget;
    private boolean gated;          // the decoder waits for room for a large frame of gateWant bytes
    private long gateWant;
    private Runnable gateRetry;
    private boolean gateWaitsForBudget;
    private long gatedBytes;        // reserved for frames being read, not yet requests
    private long frameSince;        // System.nanoTime() when the frame being read was reserved (gatedBytes > 0)
    private boolean closed;
    /** What the budget calls back when a waiting frame may fit (removed from it when the connection ends). */
    private final Runnable frameWaiter = this::frameBudgetReleased;

    /** Without gated frames: no request's cost is prepaid. */
    public Admission(Channel channel, MemoryBudget budget, int maxRequests, long maxBytes, ToLongFunction<T> cost, Consumer<T> dispatch) {
        this(channel, budget, maxRequests, maxBytes, cost, r -> 0, dispatch);
    }

    /**
     * @param prepaid the part of a request's cost its decoder already reserved through this gate (a
     *     gated write's payload); the decoder must have this admission as its gate
     */
    public Admission(Channel channel, MemoryBudget budget, int maxRequests, long maxBytes, ToLongFunction<T> cost,
                     ToLongFunction<T> prepaid, Consumer<T> dispatch) {
        this.channel = channel;
        this.budget = budget;
        this.maxRequests = maxRequests;
        this.maxBytes = maxBytes;
        this.cost = cost;
        this.prepaid = prepaid;
        this.dispatch = dispatch;
    }

    /**
     * The decoder is about to accumulate a large frame: counted now (against this connection's bytes in
     * flight and the server's budget), or the connection waits unread until it fits.
     */
    @Override
    public boolean reserve(long n, Runnable retry) {
        if (closed) return false;
        boolean connectionRoom = fitsConnection(n);
        if (connectionRoom && budget.tryReserveFrame(n)) {
            gated = false;
            if (gatedBytes == 0) frameSince = System.nanoTime();
            gatedBytes += n;
            // its bytes are paid for: read them whatever else holds reading back, so that how long the
            // frame stays unfinished is the client's doing (the guard cuts off clients that stall in one)
            channel.config().setAutoRead(true);
            return true;
        }
        gated = true;
        gateWant = n;
        gateRetry = retry;
        channel.config().setAutoRead(false);
        if (connectionRoom && !gateWaitsForBudget) {
            gateWaitsForBudget = true;
            budget.whenFrameFits(n, frameWaiter);
        }
        // else this connection's own replies make room: done() drains, which resumes the decoder
        return false;
    }

    private boolean fitsConnection(long n) {
        return requests == 0 && gatedBytes == 0 || bytes + gatedBytes + n <= maxBytes;
    }

    private void frameBudgetReleased() {
        channel.eventLoop().execute(() -> {
            gateWaitsForBudget = false;
            resumeDecoder();
        });
    }

    /** The decoder tries its frame again (it reserves, or waits again). */
    private void resumeDecoder() {
        if (closed || !gated) return;
        gated = false;
        gateRetry.run();
        drain();
    }

    /** The decoder gives back what it reserved for a frame (decoded into a message that holds none, or the connection ended). */
    @Override
    public void release(long n) {
        frameGone(n);
        budget.releaseFrame(n);
    }

    /** A decoded request the session drops without offering it: what its decoder reserved for it goes. */
    public void dropped(T request) {
        long p = prepaid.applyAsLong(request);
        frameGone(p);
        budget.releaseFrame(p);
    }

    /** A decoded request: dispatched now if it fits, else kept in order until it does. */
    public void offer(T request) {
        long p = prepaid.applyAsLong(request);             // its reservation is the request's now
        if (p > 0) {
            frameGone(p);
            budget.frameRead(p);
        }
        if (closed) {
            budget.release(p);
            ReferenceCountUtil.release(request);
            return;
        }
        if (waiting.isEmpty() && tryAdmit(request)) {
            dispatch.accept(request);
            return;
        }
        waiting.add(request);
        channel.config().setAutoRead(false);
    }

    private void frameGone(long n) {
        gatedBytes -= n;
        if (gatedBytes == 0) frameSince = 0;
    }

    @Override
    public long unfinishedFrameNanos() {
        return gatedBytes > 0 ? System.nanoTime() - frameSince : -1;
    }

    @Override
    public long unfinishedFrameBytes() {
        return gatedBytes;
    }

    @Override
    public boolean holdsMemory() {
        return requests > 0 || gatedBytes > 0 || !waiting.isEmpty();
    }

    @Override
    public boolean memoryWantedWithin(long nanos) {
        return budget.hasWaiters() || budget.refusedWithin(nanos);
    }

    private boolean tryAdmit(T request) {
        long c = cost.applyAsLong(request);
        if (requests >= maxRequests || (requests > 0 && bytes + c > maxBytes)) return false;
        if (!budget.tryReserve(c - prepaid.applyAsLong(request))) {
            if (!waitingForBudget) {
                waitingForBudget = true;
                budget.whenAvailable(c, () -> channel.eventLoop().execute(() -> {
                    waitingForBudget = false;
                    drain();
                }));
            }
            return false;
        }
        requests++;
        bytes += c;
        return true;
    }

    /** A request's reply has been written (or dropped): its cost is released. */
    public void done(long c) {
        requests--;
        bytes -= c;
        budget.release(c);
        drain();
    }

    /** The cost this request was admitted with. */
    public long costOf(T request) {
        return cost.applyAsLong(request);
    }

    /** Dispatches waiting requests that now fit; reads again once none waits and the client takes its replies. */
    public void drain() {
        while (!closed && !waiting.isEmpty() && tryAdmit(waiting.peek())) dispatch.accept(waiting.poll());
        if (closed) return;
        if (gated && !gateWaitsForBudget && fitsConnection(gateWant)) {
            resumeDecoder();
            return;
        }
        if (gatedBytes > 0) {           // a frame being read is paid for (see reserve)
            if (!channel.config().isAutoRead()) channel.config().setAutoRead(true);
            return;
        }
        boolean room = !gated && waiting.isEmpty() && requests < maxRequests / 2 + 1 && bytes <= maxBytes / 2;
        if (room && channel.isWritable() && !channel.config().isAutoRead()) channel.config().setAutoRead(true);
        else if (!room || !channel.isWritable()) channel.config().setAutoRead(false);
    }

    /** Whether a request is waiting to be dispatched (Tflush may cancel it). */
    public boolean removeWaiting(java.util.function.Predicate<T> which) {
        var it = waiting.iterator();
        while (it.hasNext()) {
            T t = it.next();
            if (which.test(t)) {
                it.remove();
                budget.release(prepaid.applyAsLong(t));
                ReferenceCountUtil.release(t);
                return true;
            }
        }
        return false;
    }

    public int inFlight() { return requests; }

    @Override
    public boolean idle() { return requests == 0 && waiting.isEmpty(); }

    /** The connection ended: requests not yet dispatched are dropped (in-flight ones release via {@link #done}). */
    public void close() {
        closed = true;
        // a request waiting for the budget is released below, which calls every waiter back; a frame
        // waiting for room may be all this connection had
        if (gateWaitsForBudget) budget.forget(frameWaiter);
        T t;
        while ((t = waiting.poll()) != null) {
            budget.release(prepaid.applyAsLong(t));
            ReferenceCountUtil.release(t);
        }
    }
}
