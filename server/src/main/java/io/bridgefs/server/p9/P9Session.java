package io.bridgefs.server.p9;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Codec;
import io.bridgefs.protocol.p9.P9FrameDecoder;
import io.bridgefs.protocol.p9.P9Message;
import io.bridgefs.server.posix.ServerThreads;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.ArrayList;
import java.util.List;
import io.bridgefs.server.net.Admission;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One 9P2000.L connection. Tversion and Tflush are handled on the event loop; every other request is
 * admitted by the connection's {@link Admission} (at most {@link #MAX_OUTSTANDING} requests and
 * {@link #MAX_BYTES} of requests and replies in flight, within the server's memory budget; past that
 * the connection stops being read), then runs on the shared executor and is answered when it
 * completes (replies can be out of order; the tag matches them).
 *
 * <p>Tflush: a request still waiting for admission, or admitted but not yet started, is cancelled and
 * never answered; Rflush comes at once. A request already running is answered first, then Rflush.
 */
public final class P9Session extends ChannelInboundHandlerAdapter {
    private static final Logger log = LoggerFactory.getLogger(P9Session.class);
    static final int MAX_OUTSTANDING = 256;
    static final long MAX_BYTES = 32L << 20;

    /** A request admitted and not yet answered. Claimed by whoever acts first: the worker, or a Tflush. */
    private static final class Pending {
        final P9Message message;
        final long cost;
        final AtomicBoolean claimed = new AtomicBoolean();
        List<Runnable> afterReply;      // Rflush replies waiting for this request's reply (event loop)

        final long started = System.nanoTime();
        final String type;

        Pending(P9Message message, long cost, String type) {
            this.message = message;
            this.cost = cost;
            this.type = type;
        }
    }

    private final P9ServerContext server;
    private final P9FrameDecoder decoder;
    private final P9Ops ops;
    // event-loop confined
    private final Map<Integer, Pending> inflight = new HashMap<>();
    private Admission<P9Message> admission;
    private boolean versioned;
    private boolean complained;
    private final io.bridgefs.server.net.ReplyBatch batch = new io.bridgefs.server.net.ReplyBatch();

    public P9Session(P9ServerContext server, P9FrameDecoder decoder) {
        this.server = server;
        this.decoder = decoder;
        this.ops = new P9Ops(server, this);
    }

    /** This connection's fids and operations (tests look at its fids). */
    P9Ops ops() {
        return ops;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        ops.peer = ctx.channel().remoteAddress();
        ops.afterReplies = ctx.executor();     // its tasks run after the reads in hand and the flush of their replies
        admission = new Admission<>(ctx.channel(), server.budget, MAX_OUTSTANDING, MAX_BYTES, this::cost, P9FrameDecoder::prepaid,
                m -> dispatch(ctx, m));
        decoder.gate(admission);        // large frames are counted before they are read
        ctx.channel().attr(io.bridgefs.server.net.ConnectionGuard.FLOW).set(admission);
    }

    /** What a request holds until answered: its own bytes and the largest reply it can make. */
    long cost(P9Message m) {
        if (m instanceof P9Message.Tread r) return P9.HEADER + 4 + Math.min(Integer.toUnsignedLong(r.count()), ops.msize);
        if (m instanceof P9Message.Treaddir r) return P9.HEADER + 4 + Math.min(Integer.toUnsignedLong(r.count()), ops.msize);
        if (m instanceof P9Message.Twrite w) return P9.IOHDRSZ + w.data().readableBytes() + 64;
        return 512;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof P9Message m)) {
            io.netty.util.ReferenceCountUtil.release(msg);
            return;
        }
        if (m instanceof P9Message.Malformed bad && bad.tag() == P9.NOTAG) {
            complain(ctx, "malformed " + bad.type() + ": " + bad.reason());
            ctx.close();
            return;
        }
        if (m instanceof P9Message.Tversion v) {
            server.requests.count(typeName(m));
            version(ctx, v);
            admission.drain();          // not admitted, but a client that reads no replies still stops being read
            return;
        }
        if (m instanceof P9Message.Tflush f && versioned) {
            server.requests.count(typeName(m));
            flush(ctx, f);
            admission.drain();
            return;
        }
        batch.during(() -> admission.offer(m));
    }

    /** Replies answered while a batch of requests was read go out together: one write for many. */
    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        batch.readComplete(ctx);
        ctx.fireChannelReadComplete();
    }

    /** An admitted message, in the order received: refused at once, or run on the executor. */
    private void dispatch(ChannelHandlerContext ctx, P9Message m) {
        long cost = cost(m);
        P9Message.Rlerror refusal = refusal(ctx, m);
        if (refusal != null) {
            release(m);
            ops.countError();
            send(ctx, refusal, cost);
            return;
        }
        String type = typeName(m);
        server.requests.count(type);
        Pending p = new Pending(m, cost, type);
        Pending previous = inflight.put(m.tag(), p);
        if (previous != null) log.debug("{}: tag {} reused while in flight", ctx.channel().remoteAddress(), m.tag());
        Object fast;
        try {
            fast = ops.tryFast(m, ctx.alloc());
        } catch (RuntimeException e) {
            fast = null;        // the executor runs it and reports whatever it is
        }
        if (fast != null && p.claimed.compareAndSet(false, true)) {
            server.requests.fast(type);
            release(m);
            finish(ctx, p, fast);     // answered here: no hand-off to the executor and back
            return;
        }
        try {
            server.executor.execute((ServerThreads.UserRequest) () -> run(ctx, p));     // it sets its own user
        } catch (RejectedExecutionException e) {
            if (p.claimed.compareAndSet(false, true)) {
                release(m);
                finish(ctx, p, new P9Message.Rlerror(m.tag(), P9.EIO));
            }
        }
    }

    /** Messages answered without running: garbage, and anything before Tversion. */
    private P9Message.Rlerror refusal(ChannelHandlerContext ctx, P9Message m) {
        if (m instanceof P9Message.Malformed bad) {
            complain(ctx, "malformed " + bad.type() + ": " + bad.reason());
            return new P9Message.Rlerror(bad.tag(), P9.EPROTO);
        }
        if (m instanceof P9Message.Oversized o) {
            complain(ctx, "frame of " + o.size() + " bytes exceeds msize " + ops.msize);
            return new P9Message.Rlerror(o.tag(), P9.EMSGSIZE);
        }
        if (m instanceof P9Message.Unknown u) {
            complain(ctx, "unknown message type " + u.type());
            return new P9Message.Rlerror(u.tag(), P9.EOPNOTSUPP);
        }
        if (!versioned) {
            complain(ctx, "request before Tversion");
            return new P9Message.Rlerror(m.tag(), P9.EPROTO);
        }
        return null;
    }

    private void flush(ChannelHandlerContext ctx, P9Message.Tflush f) {
        Runnable rflush = () -> reply(ctx, new P9Message.Rflush(f.tag()));
        if (admission.removeWaiting(m -> m.tag() == f.oldtag())) {
            rflush.run();                                   // never admitted: nothing to answer for it
            return;
        }
        Pending target = inflight.get(f.oldtag());
        if (target == null) {
            rflush.run();
        } else if (target.claimed.compareAndSet(false, true)) {
            inflight.remove(f.oldtag());                    // cancelled before it started: no reply for it
            release(target.message);
            admission.done(target.cost);
            rflush.run();
        } else {
            if (target.afterReply == null) target.afterReply = new ArrayList<>();
            target.afterReply.add(rflush);                  // running: its reply first, then Rflush
        }
    }
    /** A request's type as counted: the message name without its T, lower case (walk, getattr, ...). */
    static String typeName(P9Message m) {
        String n = m.getClass().getSimpleName();
        return (n.startsWith("T") ? n.substring(1) : n).toLowerCase(java.util.Locale.ROOT);
    }

    private void version(ChannelHandlerContext ctx, P9Message.Tversion v) {
        // a new session: everything of the old one is dropped
        ops.clunkAll();
        int msize = Math.max(4096, Math.min(v.msize(), server.maxMsize));
        ops.msize = msize;
        decoder.setMaxSize(msize);
        boolean ok = v.version().equals(P9.VERSION);
        versioned = ok;
        reply(ctx, new P9Message.Rversion(v.tag(), msize, ok ? P9.VERSION : "unknown"));
    }

    private void run(ChannelHandlerContext ctx, Pending p) {
        if (!p.claimed.compareAndSet(false, true)) return;      // flushed before it started
        P9Message m = p.message;
        Object out;
        try {
            out = ops.handle(m, ctx.alloc());
        } catch (P9Error e) {
            if (e.clientError()) log.debug("{}: {} -> errno {}: {}", ctx.channel().remoteAddress(), m.getClass().getSimpleName(), e.errno, e.getMessage());
            else log.warn("{}: {} failed: {}", ctx.channel().remoteAddress(), m.getClass().getSimpleName(), e.getMessage());
            out = new P9Message.Rlerror(m.tag(), e.errno);
        } catch (IOException e) {
            P9Error pe = P9Error.from(e);
            if (pe.clientError()) log.debug("{}: {} -> errno {}: {}", ctx.channel().remoteAddress(), m.getClass().getSimpleName(), pe.errno, e.toString());
            else log.warn("{}: {} failed: {}", ctx.channel().remoteAddress(), m.getClass().getSimpleName(), e.toString());
            out = new P9Message.Rlerror(m.tag(), pe.errno);
        } catch (RuntimeException | Error e) {
            io.bridgefs.server.net.InternalErrors.record();
            log.error("{}: {} failed unexpectedly", ctx.channel().remoteAddress(), m.getClass().getSimpleName(), e);
            out = new P9Message.Rlerror(m.tag(), P9.EIO);
        } finally {
            release(m);
        }
        if (out instanceof P9Message.Rlerror) ops.countError();
        else if (out instanceof P9Message.Rattach) io.bridgefs.server.net.ConnectionGuard.negotiated(ctx.channel());
        Object reply = out;
        ctx.executor().execute(() -> finish(ctx, p, reply));
    }

    private void finish(ChannelHandlerContext ctx, Pending p, Object out) {
        if (inflight.get(p.message.tag()) == p) inflight.remove(p.message.tag());
        send(ctx, out, p.cost);
        server.requests.time(p.type, System.nanoTime() - p.started);
        if (p.afterReply != null) p.afterReply.forEach(Runnable::run);
    }

    /** Writes a reply whose request was admitted; its cost is released once the socket has taken it. */
    private void send(ChannelHandlerContext ctx, Object out, long cost) {
        batch.write(ctx, encode(ctx, out)).addListener(f -> admission.done(cost));
    }

    private void reply(ChannelHandlerContext ctx, Object out) {
        ctx.writeAndFlush(encode(ctx, out));
    }

    private static ByteBuf encode(ChannelHandlerContext ctx, Object out) {
        if (out instanceof ByteBuf encoded) return encoded;
        ByteBuf b = ctx.alloc().buffer();
        P9Codec.encode((P9Message) out, b);
        return b;
    }

    private static void release(P9Message m) {
        if (m instanceof P9Message.Payload p && p.data().refCnt() > 0) p.release();
    }

    private void complain(ChannelHandlerContext ctx, String what) {
        if (complained) {
            log.debug("{}: {}", ctx.channel().remoteAddress(), what);
            return;
        }
        complained = true;
        log.info("{}: {} (further protocol errors on this connection logged at debug)", ctx.channel().remoteAddress(), what);
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        admission.drain();
        ctx.fireChannelWritabilityChanged();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        admission.close();
        // every fid is dropped now; one still used by a running request is dropped when that request ends
        ops.close();
        ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (cause instanceof IOException) log.debug("{}: connection error: {}", ctx.channel().remoteAddress(), cause.toString());
        else {
            io.bridgefs.server.net.InternalErrors.record();
            log.warn("{}: closing connection after unexpected error", ctx.channel().remoteAddress(), cause);
        }
        ctx.close();
    }
}
