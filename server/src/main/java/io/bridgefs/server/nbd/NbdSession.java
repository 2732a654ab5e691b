package io.bridgefs.server.nbd;

import static io.bridgefs.protocol.nbd.NbdConstants.*;

import io.bridgefs.protocol.nbd.NbdConstants;
import io.bridgefs.protocol.nbd.NbdReply;
import io.bridgefs.protocol.nbd.NbdRequest;
import io.bridgefs.server.cache.BackingStore;
import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.cache.IoPath;
import io.bridgefs.server.cache.PinnedRange;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.bridgefs.protocol.nbd.NbdRequestDecoder;
import io.bridgefs.server.net.Admission;
import io.bridgefs.server.net.ConnectionGuard;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.ReferenceCountUtil;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.AccessDeniedException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The transmission phase of one connection. Requests are checked on the event loop (cheap checks,
 * answered at once), then run on the shared executor and answered in order of completion, matched by
 * cookie. The number of requests and bytes in flight, and the replies queued for a slow client
 * (write-buffer water marks), are bounded per connection: past a bound the connection stops reading
 * until replies drain. Errors use NBD_E* codes only.
 */
public final class NbdSession extends ChannelInboundHandlerAdapter {
    private static final Logger log = LoggerFactory.getLogger(NbdSession.class);
    public static final int BASE_ALLOCATION_ID = 1;
    private static final int MAX_IN_FLIGHT = 64;
    private static final long MAX_IN_FLIGHT_BYTES = 64L << 20;
    private static final int KNOWN_FLAGS = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_DF
            | NBD_CMD_FLAG_REQ_ONE | NBD_CMD_FLAG_FAST_ZERO;
    private static final int MAX_EXTENTS = 256;

    private final NbdServerContext server;
    private final NbdExport export;
    private final boolean structured;
    private final boolean baseAllocation;
    // event-loop confined
    private Admission<NbdRequest> admission;
    private boolean disconnecting;
    private boolean complainedOnce;
    final io.bridgefs.server.net.ReplyBatch batch = new io.bridgefs.server.net.ReplyBatch();
    private final ColdReads cold;

    NbdSession(NbdServerContext server, NbdExport export, boolean structured, boolean baseAllocation) {
        this.server = server;
        this.export = export;
        this.structured = structured;
        this.baseAllocation = baseAllocation;
        this.cold = new ColdReads(this, export);
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        admission = new Admission<>(ctx.channel(), server.budget(), MAX_IN_FLIGHT, MAX_IN_FLIGHT_BYTES,
                NbdSession::cost, r -> gated ? NbdRequestDecoder.prepaid(r) : 0, r -> dispatch(ctx, r));
        ctx.channel().attr(ConnectionGuard.FLOW).set(admission);
        if (export.bridged() != null) export.bridged().attach();
    }

    private boolean gated;

    /** Large write payloads of {@code decoder} are counted before they are read (call once the session is in the pipeline). */
    void gate(NbdRequestDecoder decoder) {
        gated = true;
        decoder.gate(admission);
    }

    /** What a request holds until its reply is written: its payload and its reply. */
    static long cost(NbdRequest r) {
        if (r instanceof NbdRequest.Read) return STRUCTURED_REPLY_HEADER_SIZE + 8 + r.length();
        if (r instanceof NbdRequest.Write) return REQUEST_HEADER_SIZE + r.length();
        if (r instanceof NbdRequest.BlockStatus) return 64 + 8L * MAX_EXTENTS;
        return 64;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof NbdRequest req) || disconnecting) {
            if (msg instanceof NbdRequest r) admission.dropped(r);
            ReferenceCountUtil.release(msg);
            return;
        }
        if (req instanceof NbdRequest.BadMagic b) {
            log.info("{}: bad request magic 0x{}: disconnecting", ctx.channel().remoteAddress(), Integer.toHexString(b.magic()));
            disconnecting = true;
            ctx.close();
            return;
        }
        batch.during(() -> admission.offer(req));
    }

    /** Replies answered while a batch of requests was read go out together: one write for many. */
    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        batch.readComplete(ctx);
        ctx.fireChannelReadComplete();
    }

    /** An admitted request, in the order received: refused at once, or run on the executor. */
    private void dispatch(ChannelHandlerContext ctx, NbdRequest req) {
        long cost = cost(req);
        if (req instanceof NbdRequest.Disc) {
            disconnecting = true;
            admission.done(cost);
            if (admission.inFlight() == 0) ctx.close();
            return;
        }
        int error = check(req);
        if (error != 0) {
            ReferenceCountUtil.release(req);
            complain(ctx, req, error);
            export.metrics().errors.inc();
            send(ctx, cost, new Outcome(errorReply(ctx, req, error, "invalid " + NbdConstants.commandName(req.type())), null));
            return;
        }
        Outcome fast = tryFast(ctx, req);
        if (fast != null) {
            ReferenceCountUtil.release(req);
            send(ctx, cost, fast);
            return;
        }
        if (cold.wants(req)) {
            cold.queue(ctx, req, cost);
            return;
        }
        runOnExecutor(ctx, req, cost);
    }

    /**
     * Runs {@code req} on the executor, from the event loop or from the executor itself; if the server
     * is stopping, refuses it on the event loop, where replies are sent.
     */
    void runOnExecutor(ChannelHandlerContext ctx, NbdRequest req, long cost) {
        if (submit(() -> run(ctx, req, cost))) return;
        if (ctx.channel().eventLoop().inEventLoop()) refuse(ctx, req, cost);
        else ctx.channel().eventLoop().execute(() -> refuse(ctx, req, cost));
    }

    /** Runs {@code task} on the executor; false, running nothing, if the server is stopping. */
    boolean submit(Runnable task) {
        try {
            server.executor().execute(task);
            return true;
        } catch (RejectedExecutionException e) {
            return false;
        }
    }

    /** Answers {@code req}, which will not run: the server is stopping. */
    void refuse(ChannelHandlerContext ctx, NbdRequest req, long cost) {
        ReferenceCountUtil.release(req);
        send(ctx, cost, new Outcome(errorReply(ctx, req, NBD_ESHUTDOWN, "server is shutting down"), null));
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        admission.close();
        if (export.bridged() != null) export.bridged().detach();
        ctx.fireChannelInactive();
    }

    /** Cheap validity checks; returns an NBD_E* code, or 0. */
    private int check(NbdRequest req) {
        if (req instanceof NbdRequest.Unknown) return NBD_EINVAL;
        if ((req.flags() & ~KNOWN_FLAGS) != 0) return NBD_EINVAL;
        if (req.hasFlag(NBD_CMD_FLAG_DF) && !(structured && req instanceof NbdRequest.Read)) return NBD_EINVAL;
        if (req instanceof NbdRequest.Flush) return 0;
        boolean writes = req instanceof NbdRequest.Write || req instanceof NbdRequest.OversizedWrite
                || req instanceof NbdRequest.Trim || req instanceof NbdRequest.WriteZeroes;
        if (writes && export.readOnly()) return NBD_EPERM;
        if (req instanceof NbdRequest.OversizedWrite) return NBD_EINVAL;
        if (req instanceof NbdRequest.Read && req.length() > NbdExport.MAX_PAYLOAD) return NBD_EINVAL;
        long size = export.size();
        // unsigned: an offset of 2^63 or more is a negative long and always out of range
        boolean inRange = req.offset() >= 0 && req.offset() <= size && req.length() <= size - req.offset();
        if (!inRange) return writes ? NBD_ENOSPC : NBD_EINVAL;
        if (req instanceof NbdRequest.BlockStatus) {
            if (!baseAllocation || !structured) return NBD_EINVAL;
            if (req.length() == 0) return NBD_EINVAL;
        }
        return 0;
    }

    private void complain(ChannelHandlerContext ctx, NbdRequest req, int error) {
        if (complainedOnce) {
            log.debug("{}: {} offset {} length {} refused with errno {}", ctx.channel().remoteAddress(),
                    NbdConstants.commandName(req.type()), Long.toUnsignedString(req.offset()), req.length(), error);
            return;
        }
        complainedOnce = true;
        log.info("{}: {} offset {} length {} flags 0x{} refused with errno {} (further refusals on this connection logged at debug)",
                ctx.channel().remoteAddress(), NbdConstants.commandName(req.type()), Long.toUnsignedString(req.offset()),
                req.length(), Integer.toHexString(req.flags()), error);
    }

    /**
     * On the event loop, a request that cannot block: a read of resident pages (sent zero-copy), or a
     * write (not FUA) into resident pages, or into new frames where no old content must be read first
     * (whole pages: QEMU's writes are) and no frame must be written back first. Null for anything else,
     * which goes to the executor: having done nothing, or for a write, having written some of the same
     * bytes the executor then writes again (the request is not answered before it has). Saves two
     * thread hand-offs per request on a warm cache, and on a cold one for whole-page writes.
     */
    private Outcome tryFast(ChannelHandlerContext ctx, NbdRequest req) {
        if (export.bridged() != null) return null;     // generated blocks and several files per read: the executor
        var m = export.metrics();
        long t0 = System.nanoTime();
        if (req instanceof NbdRequest.Read && req.length() > 0) {
            PinnedRange pinned = export.file().pinIfResident(IoPath.NBD, req.offset(), (int) req.length());
            if (pinned == null) return null;
            Outcome out;
            try {
                out = zeroCopyReply(ctx, req, pinned);
            } catch (RuntimeException | Error e) {
                pinned.release();         // the executor runs it again and reports what fails
                return null;
            }
            m.readBytes.inc(req.length());
            m.read.update(System.nanoTime() - t0, TimeUnit.NANOSECONDS);
            return out;
        }
        if (req instanceof NbdRequest.Write w && !req.hasFlag(NBD_CMD_FLAG_FUA)) {
            var file = export.file();
            java.nio.ByteBuffer[] data = w.payload().nioBuffers();    // a declined write leaves them as they were
            if (!file.writeIfResident(IoPath.NBD, w.offset(), data) && !file.writeIfNoWait(IoPath.NBD, w.offset(), data)) {
                return null;
            }
            m.writeBytes.inc(w.length());
            m.write.update(System.nanoTime() - t0, TimeUnit.NANOSECONDS);
            return new Outcome(ok(ctx, req), null);
        }
        return null;
    }

    /** A reply, and what to do once the socket has taken it (unpin zero-copy frames). */
    record Outcome(ByteBuf reply, Runnable afterWrite) {}

    void run(ChannelHandlerContext ctx, NbdRequest req, long cost) {
        Outcome reply;
        try {
            reply = execute(ctx, req);
        } catch (IOException | RuntimeException | Error e) {
            reply = failed(ctx, req, e);
        } finally {
            ReferenceCountUtil.release(req);
        }
        done(ctx, cost, reply);
    }

    /** The reply to a request that failed with {@code e}: logged, counted, an NBD error code. */
    Outcome failed(ChannelHandlerContext ctx, NbdRequest req, Throwable e) {
        export.metrics().errors.inc();
        if (e instanceof IOException io) {
            log.warn("{}: {} offset {} length {} on export '{}' failed: {}", ctx.channel().remoteAddress(),
                    NbdConstants.commandName(req.type()), req.offset(), req.length(), export.name(), e.toString());
            return new Outcome(errorReply(ctx, req, errno(io), e.getMessage() == null ? e.toString() : e.getMessage()), null);
        }
        io.bridgefs.server.net.InternalErrors.record();
        log.error("{}: {} failed unexpectedly", ctx.channel().remoteAddress(), NbdConstants.commandName(req.type()), e);
        return new Outcome(errorReply(ctx, req, NBD_EIO, "internal error"), null);
    }

    private void done(ChannelHandlerContext ctx, long cost, Outcome out) {
        ctx.channel().eventLoop().execute(() -> send(ctx, cost, out));
    }

    /**
     * Writes a reply (on the event loop). The request's cost is released, and zero-copy frames unpinned,
     * once the socket has taken the reply or the connection has failed it.
     */
    void send(ChannelHandlerContext ctx, long cost, Outcome out) {
        batch.write(ctx, out.reply()).addListener(f -> {
            if (out.afterWrite() != null) out.afterWrite().run();
            admission.done(cost);
            if (disconnecting && admission.inFlight() == 0) ctx.close();
        });
    }

    /** A client that does not read its replies stops being read from: queued replies stay bounded. */
    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        admission.drain();
        ctx.fireChannelWritabilityChanged();
    }

    private Outcome execute(ChannelHandlerContext ctx, NbdRequest req) throws IOException {
        var m = export.metrics();
        var file = export.file();
        boolean fua = req.hasFlag(NBD_CMD_FLAG_FUA);
        if (req instanceof NbdRequest.Read) {
            try (var t = m.read.time()) {
                Outcome out = readReply(ctx, req);
                m.readBytes.inc(req.length());
                return out;
            }
        } else if (req instanceof NbdRequest.Write w) {
            try (var t = m.write.time()) {
                file.write(IoPath.NBD, w.offset(), w.payload().nioBuffers(), fua);
                m.writeBytes.inc(w.length());
                return new Outcome(ok(ctx, req), null);
            }
        } else if (req instanceof NbdRequest.Flush) {
            try (var t = m.flush.time()) {
                if (file != null) file.flush();      // a bridged image is read-only: nothing to flush
                return new Outcome(ok(ctx, req), null);
            }
        } else if (req instanceof NbdRequest.Trim) {
            try (var t = m.trim.time()) {
                file.discard(IoPath.NBD, req.offset(), req.length());
                if (fua) file.flush();
                return new Outcome(ok(ctx, req), null);
            }
        } else if (req instanceof NbdRequest.WriteZeroes) {
            try (var t = m.writeZeroes.time()) {
                boolean noHole = req.hasFlag(NBD_CMD_FLAG_NO_HOLE);
                if (req.hasFlag(NBD_CMD_FLAG_FAST_ZERO) && (noHole || !file.sparse())) {
                    return new Outcome(errorReply(ctx, req, NBD_ENOTSUP, "zeroing this range would not be faster than writing"), null);
                }
                if (noHole) file.writeZeros(IoPath.NBD, req.offset(), req.length());
                else file.discard(IoPath.NBD, req.offset(), req.length());
                if (fua) file.flush();
                return new Outcome(ok(ctx, req), null);
            }
        } else if (req instanceof NbdRequest.Cache) {
            try (var t = m.cache.time()) {
                // advisory: at most the largest request is brought in, so that requests of up to 4 GiB
                // cannot keep the I/O threads reading (nor flush the cache) on one client's word
                long limit = Math.min(Math.min(req.length(), NbdExport.MAX_PAYLOAD), export.size() - req.offset());
                if (export.bridged() != null) export.bridged().prefetch(IoPath.NBD, req.offset(), limit);
                else file.prefetch(IoPath.NBD, req.offset(), limit);
                return new Outcome(ok(ctx, req), null);
            }
        } else if (req instanceof NbdRequest.BlockStatus) {
            try (var t = m.blockStatus.time()) {
                return new Outcome(blockStatus(ctx, req), null);
            }
        }
        return new Outcome(errorReply(ctx, req, NBD_EINVAL, "unsupported command"), null);
    }

    private ByteBuf ok(ChannelHandlerContext ctx, NbdRequest req) {
        ByteBuf b = ctx.alloc().buffer(SIMPLE_REPLY_HEADER_SIZE);
        NbdReply.simple(b, req.cookie(), 0);
        return b;
    }

    /**
     * A read reply. Normally zero-copy: the reply is the header plus views of the cache frames, which
     * stay pinned until the socket has taken them. Under cache pressure the bytes are copied instead.
     */
    private Outcome readReply(ChannelHandlerContext ctx, NbdRequest req) throws IOException {
        int len = (int) req.length();
        if (structured && len == 0) {
            ByteBuf b = ctx.alloc().buffer(STRUCTURED_REPLY_HEADER_SIZE);
            NbdReply.none(b, req.cookie());
            return new Outcome(b, null);
        }
        if (export.bridged() != null) return bridgedReadReply(ctx, req);
        PinnedRange pinned = export.file().pin(IoPath.NBD, req.offset(), len);
        if (pinned != null) return zeroCopyReply(ctx, req, pinned);
        int header = structured ? STRUCTURED_REPLY_HEADER_SIZE + 8 : SIMPLE_REPLY_HEADER_SIZE;
        return new Outcome(copiedReadReply(ctx, req, header, len), null);
    }

    /** The reply header plus views of the pinned frames; they are unpinned once the socket took them. */
    Outcome zeroCopyReply(ChannelHandlerContext ctx, NbdRequest req, PinnedRange pinned) {
        return new Outcome(dataReply(ctx, req, pinned.views()), pinned::release);
    }

    /** A read of a bridged image: generated metadata, the host files' pinned pages, zeros. */
    private Outcome bridgedReadReply(ChannelHandlerContext ctx, NbdRequest req) throws IOException {
        io.bridgefs.server.bridged.BridgedDisk.Pieces p = export.bridged().read(IoPath.NBD, req.offset(), (int) req.length());
        try {
            return new Outcome(dataReply(ctx, req, p.buffers()), p.release());
        } catch (RuntimeException | Error e) {
            p.release().run();
            throw e;
        }
    }

    private ByteBuf dataReply(ChannelHandlerContext ctx, NbdRequest req, ByteBuffer[] views) {
        int len = (int) req.length();
        ByteBuf h = ctx.alloc().buffer(structured ? STRUCTURED_REPLY_HEADER_SIZE + 8 : SIMPLE_REPLY_HEADER_SIZE);
        if (structured) NbdReply.offsetDataHeader(h, NBD_REPLY_FLAG_DONE, req.cookie(), req.offset(), len);
        else NbdReply.simple(h, req.cookie(), 0);
        CompositeByteBuf c = ctx.alloc().compositeDirectBuffer(views.length + 1);
        c.addComponent(true, h);
        for (ByteBuffer v : views) c.addComponent(true, Unpooled.wrappedBuffer(v));
        return c;
    }

    private ByteBuf copiedReadReply(ChannelHandlerContext ctx, NbdRequest req, int header, int len) throws IOException {
        ByteBuf b = ctx.alloc().directBuffer(header + len);
        try {
            if (structured) NbdReply.offsetDataHeader(b, NBD_REPLY_FLAG_DONE, req.cookie(), req.offset(), len);
            else NbdReply.simple(b, req.cookie(), 0);
            export.file().read(IoPath.NBD, req.offset(), b.nioBuffer(b.writerIndex(), len));
            b.writerIndex(b.writerIndex() + len);
            return b;
        } catch (IOException | RuntimeException e) {
            b.release();
            throw e;
        }
    }

    private ByteBuf blockStatus(ChannelHandlerContext ctx, NbdRequest req) throws IOException {
        int max = req.hasFlag(NBD_CMD_FLAG_REQ_ONE) ? 1 : MAX_EXTENTS;
        long[] extents = new long[2 * max];
        int n = 0;
        long pos = req.offset();
        long end = req.offset() + req.length();
        var file = export.file();
        while (pos < end && n < max) {
            BackingStore.Extent e = file != null ? file.extentAt(pos, end) : export.bridged().extentAt(pos, end);
            long len = Math.min(e.length(), end - pos);
            int flags = e.hole() ? NBD_STATE_HOLE | NBD_STATE_ZERO : 0;
            if (n > 0 && extents[2 * n - 1] == flags && extents[2 * (n - 1)] + len <= 0xFFFF_F000L) {
                extents[2 * (n - 1)] += len;
            } else {
                extents[2 * n] = len;
                extents[2 * n + 1] = flags;
                n++;
            }
            pos += len;
        }
        ByteBuf b = ctx.alloc().buffer(STRUCTURED_REPLY_HEADER_SIZE + 4 + 8 * n);
        NbdReply.blockStatus(b, NBD_REPLY_FLAG_DONE, req.cookie(), BASE_ALLOCATION_ID, extents, n);
        return b;
    }

    private ByteBuf errorReply(ChannelHandlerContext ctx, NbdRequest req, int error, String message) {
        ByteBuf b = ctx.alloc().buffer();
        if (structured && (req instanceof NbdRequest.Read || req instanceof NbdRequest.BlockStatus)) {
            NbdReply.error(b, NBD_REPLY_FLAG_DONE, req.cookie(), error, message);
        } else {
            NbdReply.simple(b, req.cookie(), error);
        }
        return b;
    }

    static int errno(IOException e) {
        if (e instanceof AccessDeniedException) return NBD_EPERM;
        if (e instanceof io.bridgefs.server.posix.Posix.ErrnoException p) {
            return switch (p.errno()) {
                case 28, 122 -> NBD_ENOSPC;     // ENOSPC, EDQUOT
                case 1, 13, 30 -> NBD_EPERM;    // EPERM, EACCES, EROFS
                default -> NBD_EIO;
            };
        }
        String msg = String.valueOf(e.getMessage());
        if (msg.contains("No space left") || msg.contains("Disk quota")) return NBD_ENOSPC;
        return NBD_EIO;
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (cause instanceof IOException) {
            log.debug("{}: connection error: {}", ctx.channel().remoteAddress(), cause.toString());
        } else {
            io.bridgefs.server.net.InternalErrors.record();
            log.warn("{}: closing connection after unexpected error", ctx.channel().remoteAddress(), cause);
        }
        ctx.close();
    }
}
