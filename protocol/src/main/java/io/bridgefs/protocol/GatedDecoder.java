package io.bridgefs.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;

/**
 * A frame decoder that asks a {@link FrameGate} before it accumulates a large frame. While the gate
 * refuses, it asks for no more input (ByteToMessageDecoder would request a read whenever a read
 * produced nothing and auto-read is off, and so accumulate what the gate holds back); it tries again
 * when the gate says, or on its next read. What it reserved for an unfinished frame is given back when it is removed (the
 * connection ended).
 */
public abstract class GatedDecoder extends ByteToMessageDecoder {
    private FrameGate gate;
    private long reserved;
    private boolean waitingForGate;
    private long awaited, wholeFrames;
    private ChannelHandlerContext ctx;

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) throws Exception {
        this.ctx = ctx;
        super.handlerAdded(ctx);
    }

    /** Decodes again what is buffered (on the event loop): the gate has room now. Not through the pipeline's head, which a TLS handler would swallow. */
    private void retry() {
        if (ctx == null || ctx.isRemoved()) return;
        try {
            channelRead(ctx, Unpooled.EMPTY_BUFFER);
            channelReadComplete(ctx);
        } catch (Exception e) {
            ctx.fireExceptionCaught(e);
        }
    }

    /** Counts large frames before they are read (see {@link FrameGate}). */
    public void gate(FrameGate gate) {
        this.gate = gate;
    }

    /**
     * Before accumulating a frame of {@code size} bytes: true to go on (reserved, or too small or no gate
     * to need it), false to stop decoding until the next read.
     */
    protected final boolean admitFrame(long size) {
        if (gate == null || size <= FrameGate.MIN_GATED || reserved > 0) return true;
        waitingForGate = !gate.reserve(size, this::retry);
        if (waitingForGate) return false;
        reserved = size;
        return true;
    }

    /**
     * Whether {@code in} holds the whole frame of {@code size} bytes (from its reader index); if not, the
     * bytes still to come are noted for {@link #bytesAwaited}.
     */
    protected final boolean whole(ByteBuf in, long size) {
        long missing = size - in.readableBytes();
        awaited = Math.max(0, missing);
        if (missing <= 0) wholeFrames++;
        return missing <= 0;
    }

    /** How many frames {@link #whole} has found whole so far (each is decoded next). */
    public final long wholeFrames() {
        return wholeFrames;
    }

    /**
     * The bytes the frame being read still lacks, as the last decoding saw it (0 when what is buffered
     * ends at a frame's end, or a frame's header is not yet whole): the stream's next bytes, which the
     * client sends without waiting for anything.
     */
    public final long bytesAwaited() {
        return awaited;
    }

    /** The frame is decoded: of what was reserved for it, all but {@code kept} (the message holds that) goes back. */
    protected final void frameDecoded(long kept) {
        if (reserved > kept) gate.release(reserved - kept);
        reserved = 0;
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) throws Exception {
        if (!waitingForGate) {
            super.channelReadComplete(ctx);
            return;
        }
        discardSomeReadBytes();
        ctx.fireChannelReadComplete();
    }

    @Override
    protected void handlerRemoved0(ChannelHandlerContext ctx) {
        if (reserved > 0) gate.release(reserved);       // the connection ended mid-frame
        reserved = 0;
    }
}
