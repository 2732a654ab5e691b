package io.bridgefs.server.net;

import com.codahale.metrics.Counter;
import com.codahale.metrics.Gauge;
import com.codahale.metrics.MetricRegistry;
import io.bridgefs.server.config.Limits;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufHolder;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelOutboundBuffer;
import io.netty.channel.ChannelPromise;
import io.netty.channel.FileRegion;
import io.netty.handler.timeout.IdleState;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.AttributeKey;
import java.net.InetSocketAddress;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The door of one listener: counts its connections (gauge {@code bridgefs_connections{path}}), closes
 * those beyond {@code --max-connections} or {@code --max-connections-per-peer} as they arrive (each
 * logged with the peer, counted in {@code bridgefs_connections_refused_total{path}}), and closes a
 * connection whose client has taken none of its queued replies for {@code --stall-timeout} seconds (seen
 * at its looks, below: at most one look later), or that has been idle (nothing in flight, no traffic)
 * for {@code --idle-timeout} seconds.
 *
 * <p>Request memory is shared, so a client that holds some and makes no progress holds back everyone
 * else: every few seconds ({@link #WATCH_SECONDS}, at most the stall timeout) the guard looks at each
 * connection, counting the bytes it read from it and the bytes of replies its socket took, and closes
 * one that has left a large request (a frame whose bytes were reserved when its header came)
 * unfinished for {@code --stall-timeout}, or, while other connections wait for request memory, moves
 * too slowly to give back what it holds within {@code --stall-timeout} ({@link Pace}).
 */
@ChannelHandler.Sharable
public final class ConnectionGuard extends ChannelDuplexHandler {
    private static final Logger log = LoggerFactory.getLogger(ConnectionGuard.class);
    /** What a session's flow control tells the guard of its connection (asked on the event loop). */
    public interface Flow {
        /** Nothing in flight nor waiting: an idle timeout may close it. */
        boolean idle();

        /** It holds request memory: requests in flight or waiting, or a large frame reserved. */
        boolean holdsMemory();

        /** How long the large frame being read has been unfinished (nanoseconds), or -1. */
        long unfinishedFrameNanos();

        /** The bytes reserved for the large frame being read (0 if none). */
        long unfinishedFrameBytes();

        /** Whether someone waits for request memory now, or was refused some within the last {@code nanos}. */
        boolean memoryWantedWithin(long nanos);
    }

    /** Set by a session once it is in the pipeline. */
    public static final AttributeKey<Flow> FLOW = AttributeKey.valueOf("bridgefs.flow");
    private static final AttributeKey<Watch> WATCH = AttributeKey.valueOf("bridgefs.watch");
    /** How often each connection's progress is looked at (or the stall timeout, if shorter). */
    public static final int WATCH_SECONDS = 5;
    private static final AttributeKey<Object> COUNTED = AttributeKey.valueOf("bridgefs.counted");
    private static final AttributeKey<Boolean> NEGOTIATED = AttributeKey.valueOf("bridgefs.negotiated");
    private final java.util.concurrent.atomic.AtomicLong lastHandshakeLog = new java.util.concurrent.atomic.AtomicLong(System.nanoTime() - REFUSAL_LOG_INTERVAL_NS - 1);
    private final java.util.concurrent.atomic.AtomicLong lastStallLog = new java.util.concurrent.atomic.AtomicLong(System.nanoTime() - REFUSAL_LOG_INTERVAL_NS - 1);

    private final String path;
    private final Limits limits;
    private final int watchSeconds;       // how often each connection is looked at
    private final long stallNanos;
    private final AtomicInteger open = new AtomicInteger();
    private final ConcurrentHashMap<Object, AtomicInteger> perPeer = new ConcurrentHashMap<>();
    private final Counter refused;
    private final Counter timedOut;
    private static final long REFUSAL_LOG_INTERVAL_NS = 10_000_000_000L;
    private final java.util.concurrent.atomic.AtomicLong lastRefusalLog = new java.util.concurrent.atomic.AtomicLong(System.nanoTime() - REFUSAL_LOG_INTERVAL_NS - 1);

    public ConnectionGuard(String path, Limits limits, MetricRegistry registry) {
        this.path = path;
        this.limits = limits;
        this.watchSeconds = Math.min(WATCH_SECONDS, limits.stallTimeoutSeconds());
        this.stallNanos = TimeUnit.SECONDS.toNanos(limits.stallTimeoutSeconds());
        registry.register("bridgefs.connections." + path, (Gauge<Integer>) open::get);
        this.refused = registry.counter("bridgefs.connections_refused." + path);
        this.timedOut = registry.counter("bridgefs.connections_timed_out." + path);
    }

    public int open() { return open.get(); }
    public long refused() { return refused.getCount(); }
    public long timedOut() { return timedOut.getCount(); }

    /**
     * The handlers to put first in a new connection's pipeline: the idle timer if there is an idle timeout,
     * then this guard. The stall timeout is the guard's own ({@link Watch}): a timer following every write
     * costs each reply a listener and two clock reads, which a 4 KiB request's path can feel.
     */
    public void install(Channel ch) {
        int idle = limits.idleTimeoutSeconds();
        ch.pipeline().addFirst("guard", this);
        if (idle > 0) ch.pipeline().addFirst("timeouts", new IdleStateHandler(true, 0, 0, idle, TimeUnit.SECONDS));
    }

    private static Object peerKey(Channel ch) {
        return ch.remoteAddress() instanceof InetSocketAddress a ? a.getAddress() : "local";
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        Channel ch = ctx.channel();
        if (ch.remoteAddress() instanceof InetSocketAddress peer && !limits.allows(peer.getAddress())) {
            refused.inc();
            logRefusal(ch, "not in --allow " + limits.allow());
            ctx.close();
            return;
        }
        int n = open.incrementAndGet();
        int p = perPeer.computeIfAbsent(peerKey(ch), k -> new AtomicInteger()).incrementAndGet();
        ch.attr(COUNTED).set(Boolean.TRUE);
        if (n > limits.maxConnections() || p > limits.maxConnectionsPerPeer()) {
            refused.inc();
            logRefusal(ch, (n > limits.maxConnections() ? n + " connections" : p + " connections from this peer") + " (limit "
                    + (n > limits.maxConnections() ? limits.maxConnections() : limits.maxConnectionsPerPeer()) + ")");
            ctx.close();
            return;
        }
        int limit = limits.handshakeLimitSeconds();
        if (limit > 0) ch.eventLoop().schedule(() -> closeIfNotNegotiated(ch), limit, TimeUnit.SECONDS);
        Watch w = new Watch(ch);
        ch.attr(WATCH).set(w);
        w.task = ch.eventLoop().scheduleAtFixedRate(w, watchSeconds, watchSeconds, TimeUnit.SECONDS);
        ctx.fireChannelActive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        Watch w = ctx.channel().attr(WATCH).get();
        if (w != null && msg instanceof ByteBuf b) w.in += b.readableBytes();
        ctx.fireChannelRead(msg);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        Watch w = ctx.channel().attr(WATCH).get();
        if (w != null) w.out += size(msg);
        ctx.write(msg, promise);
    }

    /** What was written before a flush is flushed: it is in the socket, or in the outbound buffer's flushed part. */
    @Override
    public void flush(ChannelHandlerContext ctx) {
        Watch w = ctx.channel().attr(WATCH).get();
        if (w != null) w.flushed = w.out;
        ctx.flush();
    }

    /** A message's bytes as the outbound buffer counts them. */
    private static long size(Object msg) {
        if (msg instanceof ByteBuf b) return b.readableBytes();
        if (msg instanceof ByteBufHolder h) return h.content().readableBytes();
        if (msg instanceof FileRegion f) return f.count() - f.transferred();
        return 0;
    }

    /** One connection's progress, looked at every {@link #WATCH_SECONDS} (event loop). */
    private final class Watch implements Runnable {
        final Channel ch;
        long in, inSeen;                // bytes read from the client: in all; at the last look
        long frameIn;                   // bytes read at the look before the frame being read began (its bytes are counted from there: lenient)
        long out, outSeen;              // bytes of replies written through the guard: in all; at the last look
        long flushed;                   // of those, the bytes written before the last flush
        long takenSeen;                 // bytes of replies taken (see taken()) at the last look with a session
        long takenLast;                 // and at the last look
        long lastLook = System.nanoTime();
        long lastTaking = lastLook;     // when the client was last seen taking replies, or had none queued (stall timeout)
        java.util.concurrent.ScheduledFuture<?> task;

        Watch(Channel ch) {
            this.ch = ch;
        }

        @Override
        public void run() {
            if (!ch.isActive()) return;
            long now = System.nanoTime(), taken = taken();
            if (taken > takenLast || out <= taken) lastTaking = now;
            takenLast = taken;
            if (now - lastTaking >= stallNanos) {
                stalled(out - taken);
                return;
            }
            Flow flow = ch.attr(FLOW).get();
            if (flow == null) return;
            long elapsed = now - lastLook;
            lastLook = now;
            long age = flow.unfinishedFrameNanos(), left = 0;
            if (age >= elapsed) left = Math.max(0, flow.unfinishedFrameBytes() - (in - frameIn));
            else if (age >= 0) frameIn = inSeen;
            // the receive low-water mark held the frame's bytes in the kernel: what was read is not the
            // client's pace (no projection this look); lowered now, the next look counts them
            if (ReceiveLowWater.release(ch)) left = 0;
            Pace.Look look = new Pace.Look(elapsed, flow.memoryWantedWithin(2 * elapsed), age, left, in - inSeen, flow.holdsMemory(),
                    Math.max(0, outSeen - takenSeen), Math.max(0, taken - takenSeen));
            inSeen = in;
            outSeen = out;
            takenSeen = taken;
            String why = Pace.verdict(look, stallNanos);
            if (log.isDebugEnabled()) log.debug("{}: {} connection's pace: {} -> {}", ch.remoteAddress(), path, look, why == null ? "kept" : why);
            if (why == null) return;
            timedOut.inc();
            if (logNow(lastStallLog)) {
                log.warn("{}: {} connection {}: closing ({} timed out in all; logged every 10 s at most)", ch.remoteAddress(), path, why,
                        timedOut.getCount());
            }
            abort(ch);
        }

        /**
         * Bytes of replies the client has taken: those flushed less what the outbound buffer still holds
         * of them (a reply being written counts what is left of it), less what the kernel still holds
         * unacknowledged (its send buffer hides several MiB, released in bursts: without it a client
         * taking 64 KiB/s seems to take nothing for 20 s, then a MiB at once).
         */
        private long taken() {
            ChannelOutboundBuffer buf = ch.unsafe().outboundBuffer();
            long[] queued = {0};
            if (buf != null) {
                try {
                    buf.forEachFlushedMessage(m -> {
                        queued[0] += size(m);
                        return true;
                    });
                } catch (Exception e) {
                    throw new IllegalStateException(e);            // the processor throws nothing
                }
            }
            int unacked = ch instanceof io.netty.channel.unix.UnixChannel e ? io.bridgefs.server.posix.Posix.unacknowledged(e.fd().intValue()) : -1;
            return flushed - queued[0] - Math.max(0, unacked);
        }

        /** The client took none of its replies for the stall timeout while {@code queued} bytes of them waited. */
        private void stalled(long queued) {
            timedOut.inc();
            log.warn("{}: {} client took none of its replies ({} bytes queued) for {} s: closing", ch.remoteAddress(), path,
                    queued, limits.stallTimeoutSeconds());
            abort(ch);
        }
    }

    /**
     * Closes a connection cut off for its pace with a reset: the replies still in its socket's send
     * buffer (several MiB) are dropped at once, not kept by the kernel for as long as the client takes
     * to read them.
     */
    private static void abort(Channel ch) {
        ch.config().setOption(io.netty.channel.ChannelOption.SO_LINGER, 0);
        ch.close();
    }

    /** The session finished negotiating (NBD: transmission begins; 9P: a Tattach succeeded): the handshake limit no longer applies. */
    public static void negotiated(Channel ch) {
        ch.attr(NEGOTIATED).set(Boolean.TRUE);
    }

    private void closeIfNotNegotiated(Channel ch) {
        if (!ch.isActive() || ch.attr(NEGOTIATED).get() != null) return;
        timedOut.inc();
        if (logNow(lastHandshakeLog)) {
            log.warn("{}: {} connection did not finish negotiating within {} s (--handshake-limit): closing ({} timed out in all; logged every 10 s at most)",
                    ch.remoteAddress(), path, limits.handshakeLimitSeconds(), timedOut.getCount());
        }
        ch.close();
    }

    /** Whether a line of this kind may be logged now: at most one every 10 s per listener (a flood must not flood the log). */
    private static boolean logNow(java.util.concurrent.atomic.AtomicLong last) {
        long now = System.nanoTime();
        long then = last.get();
        return now - then > REFUSAL_LOG_INTERVAL_NS && last.compareAndSet(then, now);
    }

    /** One line per refusal, at most every 10 s per listener. */
    private void logRefusal(Channel ch, String why) {
        if (logNow(lastRefusalLog)) {
            log.warn("{}: {} connection refused: {} ({} refused in all; further refusals logged every 10 s at most)",
                    ch.remoteAddress(), path, why, refused.getCount());
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        Channel ch = ctx.channel();
        Watch w = ch.attr(WATCH).getAndSet(null);
        if (w != null && w.task != null) w.task.cancel(false);
        if (ch.attr(COUNTED).getAndSet(null) != null) {
            open.decrementAndGet();
            perPeer.computeIfPresent(peerKey(ch), (k, c) -> c.decrementAndGet() <= 0 ? null : c);
        }
        ctx.fireChannelInactive();
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (!(evt instanceof IdleStateEvent e)) {
            ctx.fireUserEventTriggered(evt);
            return;
        }
        Channel ch = ctx.channel();
        if (e.state() == IdleState.ALL_IDLE) {
            Flow flow = ch.attr(FLOW).get();
            if (flow == null || flow.idle()) {
                timedOut.inc();
                log.info("{}: {} connection idle for {} s: closing", ch.remoteAddress(), path, limits.idleTimeoutSeconds());
                ctx.close();
            }
        }
    }
}
