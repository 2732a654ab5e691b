package io.bridgefs.server.net;

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
 * nothing it sends is buffered further.
 */
public final class Admission<T> {
    private final Channel channel;
    private final MemoryBudget budget;
    private final int maxRequests;
    private final long maxBytes;
    private final ToLongFunction<T> cost;
    private final Consumer<T> dispatch;
    private final ArrayDeque<T> waiting = new ArrayDeque<>();
    private int requests;
    private long bytes;
    private boolean waitingForBudget;
    private boolean closed;

    public Admission(Channel channel, MemoryBudget budget, int maxRequests, long maxBytes, ToLongFunction<T> cost, Consumer<T> dispatch) {
        this.channel = channel;
        this.budget = budget;
        this.maxRequests = maxRequests;
        this.maxBytes = maxBytes;
        this.cost = cost;
        this.dispatch = dispatch;
    }

    /** A decoded request: dispatched now if it fits, else kept in order until it does. */
    public void offer(T request) {
        if (closed) {
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

    private boolean tryAdmit(T request) {
        long c = cost.applyAsLong(request);
        if (requests >= maxRequests || (requests > 0 && bytes + c > maxBytes)) return false;
        if (!budget.tryReserve(c)) {
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
        boolean room = waiting.isEmpty() && requests < maxRequests / 2 + 1 && bytes <= maxBytes / 2;
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
                ReferenceCountUtil.release(t);
                return true;
            }
        }
        return false;
    }

    public int inFlight() { return requests; }

    public boolean idle() { return requests == 0 && waiting.isEmpty(); }

    /** The connection ended: requests not yet dispatched are dropped (in-flight ones release via {@link #done}). */
    public void close() {
        closed = true;
        T t;
        while ((t = waiting.poll()) != null) ReferenceCountUtil.release(t);
    }
}
