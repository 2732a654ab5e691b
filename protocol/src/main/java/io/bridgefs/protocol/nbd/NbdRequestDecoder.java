package io.bridgefs.protocol.nbd;

import io.bridgefs.protocol.FrameGate;
import io.bridgefs.protocol.GatedDecoder;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import java.util.List;

/**
 * Decodes transmission-phase requests. Flags and type are two separate 16-bit fields, offsets are
 * unsigned 64-bit, lengths unsigned 32-bit. A write payload is only accumulated when its announced
 * length is within {@code maxPayload}; a longer one is skipped as it arrives, never allocated, and
 * surfaces as {@link NbdRequest.OversizedWrite} so the session can answer it and stay in step.
 * A bad magic surfaces as {@link NbdRequest.BadMagic}; the decoder then discards all input.
 * With a {@link FrameGate}, a write whose payload is larger than {@link FrameGate#MIN_GATED} is reserved
 * before its payload is accumulated, and the emitted {@link NbdRequest.Write} keeps the reservation of
 * its {@code length} (see {@link #prepaid}): whoever releases the request releases that too.
 */
public final class NbdRequestDecoder extends GatedDecoder {
    private enum State { HEADER, SKIP, BAD }

    private final int maxPayload;
    private State state = State.HEADER;
    private long skipRemaining;

    public NbdRequestDecoder(int maxPayload) {
        this.maxPayload = maxPayload;
    }

    /** The bytes of the gate a decoded write request holds: its length if gated, else 0. */
    public static long prepaid(NbdRequest r) {
        return r instanceof NbdRequest.Write && r.length() > FrameGate.MIN_GATED ? r.length() : 0;
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        while (true) {
            switch (state) {
                case HEADER -> {
                    if (in.readableBytes() < NbdConstants.REQUEST_HEADER_SIZE) return;
                    int s = in.readerIndex();
                    int magic = in.getInt(s);
                    if (magic != NbdConstants.NBD_REQUEST_MAGIC) {
                        in.skipBytes(in.readableBytes());
                        state = State.BAD;
                        out.add(new NbdRequest.BadMagic(magic));
                        return;
                    }
                    int flags = in.getUnsignedShort(s + 4);
                    int type = in.getUnsignedShort(s + 6);
                    long cookie = in.getLong(s + 8);
                    long offset = in.getLong(s + 16);
                    long length = in.getUnsignedInt(s + 24);
                    if (type != NbdConstants.NBD_CMD_WRITE) {
                        in.skipBytes(NbdConstants.REQUEST_HEADER_SIZE);
                        out.add(NbdRequest.of(type, flags, cookie, offset, length));
                        continue;
                    }
                    if (length > maxPayload) {
                        in.skipBytes(NbdConstants.REQUEST_HEADER_SIZE);
                        skipRemaining = length;
                        state = State.SKIP;
                        out.add(new NbdRequest.OversizedWrite(flags, cookie, offset, length));
                        continue;
                    }
                    if (!admitFrame(length)) return;        // the gate has us try again
                    if (!whole(in, NbdConstants.REQUEST_HEADER_SIZE + length)) return;
                    in.skipBytes(NbdConstants.REQUEST_HEADER_SIZE);
                    frameDecoded(length);                    // the request holds it now (prepaid)
                    out.add(new NbdRequest.Write(flags, cookie, offset, length, in.readRetainedSlice((int) length)));
                }
                case SKIP -> {
                    int n = (int) Math.min(skipRemaining, in.readableBytes());
                    in.skipBytes(n);
                    skipRemaining -= n;
                    if (skipRemaining > 0) return;
                    state = State.HEADER;
                }
                case BAD -> {
                    in.skipBytes(in.readableBytes());
                    return;
                }
            }
        }
    }
}
