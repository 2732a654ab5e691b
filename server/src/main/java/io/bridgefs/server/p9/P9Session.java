package io.bridgefs.server.p9;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Codec;
import io.bridgefs.protocol.p9.P9FrameDecoder;
import io.bridgefs.protocol.p9.P9Message;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One 9P2000.L connection. Tversion and Tflush are handled on the event loop; every other request
 * runs on the shared executor and is answered when it completes (replies can be out of order; the
 * tag matches them). Tflush is answered after the flushed request's own reply. At most
 * {@link #MAX_OUTSTANDING} requests are in progress; beyond that the connection stops reading.
 */
public final class P9Session extends ChannelInboundHandlerAdapter {
    private static final Logger log = LoggerFactory.getLogger(P9Session.class);
    static final int MAX_OUTSTANDING = 256;

    private final P9ServerContext server;
    private final P9FrameDecoder decoder;
    private final P9Ops ops;
    // event-loop confined
    private final Map<Integer, CompletableFuture<Void>> inflight = new HashMap<>();
    private boolean versioned;
    private boolean complained;

    public P9Session(P9ServerContext server, P9FrameDecoder decoder) {
        this.server = server;
        this.decoder = decoder;
        this.ops = new P9Ops(server, this);
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof P9Message m)) return;
        if (m instanceof P9Message.Malformed bad) {
            complain(ctx, "malformed " + bad.type() + ": " + bad.reason());
            if (bad.tag() == P9.NOTAG) {
                ctx.close();
                return;
            }
            reply(ctx, new P9Message.Rlerror(bad.tag(), P9.EPROTO));
            return;
        }
        if (m instanceof P9Message.Oversized o) {
            complain(ctx, "frame of " + o.size() + " bytes exceeds msize " + ops.msize);
            reply(ctx, new P9Message.Rlerror(o.tag(), P9.EMSGSIZE));
            return;
        }
        if (m instanceof P9Message.Unknown u) {
            complain(ctx, "unknown message type " + u.type());
            reply(ctx, new P9Message.Rlerror(u.tag(), P9.EOPNOTSUPP));
            return;
        }
        server.requests.count(typeName(m));
        if (m instanceof P9Message.Tversion v) {
            version(ctx, v);
            return;
        }
        if (!versioned) {
            release(m);
            complain(ctx, "request before Tversion");
            reply(ctx, new P9Message.Rlerror(m.tag(), P9.EPROTO));
            return;
        }
        if (m instanceof P9Message.Tflush f) {
            CompletableFuture<Void> target = inflight.get(f.oldtag());
            if (target == null) reply(ctx, new P9Message.Rflush(f.tag()));
            else target.whenComplete((x, e) -> ctx.executor().execute(() -> reply(ctx, new P9Message.Rflush(f.tag()))));
            return;
        }
        CompletableFuture<Void> done = new CompletableFuture<>();
        inflight.put(m.tag(), done);
        if (inflight.size() >= MAX_OUTSTANDING) ctx.channel().config().setAutoRead(false);
        try {
            server.executor.execute(() -> run(ctx, m, done));
        } catch (RejectedExecutionException e) {
            release(m);
            finish(ctx, m.tag(), new P9Message.Rlerror(m.tag(), P9.EIO), done);
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

    private void run(ChannelHandlerContext ctx, P9Message m, CompletableFuture<Void> done) {
        Object out;
        try {
            out = ops.handle(m, ctx.alloc());
        } catch (P9Error e) {
            if (e.clientError()) log.debug("{}: {} -> errno {}: {}", ctx.channel().remoteAddress(), m.getClass().getSimpleName(), e.errno, e.getMessage());
            else log.warn("{}: {} failed: {}", ctx.channel().remoteAddress(), m.getClass().getSimpleName(), e.getMessage());
            out = new P9Message.Rlerror(m.tag(), e.errno);
        } catch (IOException e) {
            P9Error p = P9Error.from(e);
            if (p.clientError()) log.debug("{}: {} -> errno {}: {}", ctx.channel().remoteAddress(), m.getClass().getSimpleName(), p.errno, e.toString());
            else log.warn("{}: {} failed: {}", ctx.channel().remoteAddress(), m.getClass().getSimpleName(), e.toString());
            out = new P9Message.Rlerror(m.tag(), p.errno);
        } catch (RuntimeException | Error e) {
            log.error("{}: {} failed unexpectedly", ctx.channel().remoteAddress(), m.getClass().getSimpleName(), e);
            out = new P9Message.Rlerror(m.tag(), P9.EIO);
        } finally {
            release(m);
        }
        Object reply = out;
        ctx.executor().execute(() -> finish(ctx, m.tag(), reply, done));
    }

    private void finish(ChannelHandlerContext ctx, int tag, Object out, CompletableFuture<Void> done) {
        reply(ctx, out);
        inflight.remove(tag);
        done.complete(null);
        if (!ctx.channel().config().isAutoRead() && inflight.size() < MAX_OUTSTANDING / 2) ctx.channel().config().setAutoRead(true);
    }

    private void reply(ChannelHandlerContext ctx, Object out) {
        ByteBuf b;
        if (out instanceof ByteBuf encoded) {
            b = encoded;
        } else {
            b = ctx.alloc().buffer();
            P9Codec.encode((P9Message) out, b);
        }
        if (ctx.channel().isActive()) ctx.writeAndFlush(b);
        else b.release();
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
    public void channelInactive(ChannelHandlerContext ctx) {
        // requests still running finish on their own; their fids are dropped here
        try {
            server.executor.execute(ops::clunkAll);
        } catch (RejectedExecutionException e) {
            ops.clunkAll();   // shutting down
        }
        ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (cause instanceof IOException) log.debug("{}: connection error: {}", ctx.channel().remoteAddress(), cause.toString());
        else log.warn("{}: closing connection after unexpected error", ctx.channel().remoteAddress(), cause);
        ctx.close();
    }
}
