package io.bridgefs.protocol.nbd;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;

/**
 * Decodes the client side of the handshake: 32-bit client flags, then option requests.
 * Option data longer than {@link NbdConstants#MAX_OPTION_LENGTH} is skipped as it arrives (nothing is
 * allocated for it) and surfaces as {@link NbdHandshake.OversizedOption}. A wrong magic surfaces as
 * {@link NbdHandshake.BadMagic}; everything after it is discarded. Never throws on bad input.
 * At most one message is produced per {@code decode} call, so that when the session leaves the
 * handshake (NBD_OPT_GO) the bytes after it are still undecoded and pass to the request decoder.
 */
public final class NbdHandshakeDecoder extends ByteToMessageDecoder {
    private enum State { CLIENT_FLAGS, OPTION, SKIP, BAD }

    private State state = State.CLIENT_FLAGS;
    private long skipRemaining;

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        while (true) {
            switch (state) {
                case CLIENT_FLAGS -> {
                    if (in.readableBytes() < 4) return;
                    out.add(new NbdHandshake.ClientFlags(in.readInt()));
                    state = State.OPTION;
                    return;
                }
                case OPTION -> {
                    if (in.readableBytes() < 16) return;
                    int start = in.readerIndex();
                    long magic = in.getLong(start);
                    if (magic != NbdConstants.IHAVEOPT) {
                        in.skipBytes(in.readableBytes());
                        state = State.BAD;
                        out.add(new NbdHandshake.BadMagic(magic));
                        return;
                    }
                    int option = in.getInt(start + 8);
                    long length = in.getUnsignedInt(start + 12);
                    if (length > NbdConstants.MAX_OPTION_LENGTH) {
                        in.skipBytes(16);
                        skipRemaining = length;
                        state = State.SKIP;
                        out.add(new NbdHandshake.OversizedOption(option, length));
                        return;
                    }
                    if (in.readableBytes() < 16 + length) return;
                    in.skipBytes(16);
                    byte[] data = new byte[(int) length];
                    in.readBytes(data);
                    out.add(new NbdHandshake.Option(option, data));
                    return;   // one option per call: the handler may leave the handshake after it
                }
                case SKIP -> {
                    int n = (int) Math.min(skipRemaining, in.readableBytes());
                    in.skipBytes(n);
                    skipRemaining -= n;
                    if (skipRemaining > 0) return;
                    state = State.OPTION;
                }
                case BAD -> {
                    in.skipBytes(in.readableBytes());
                    return;
                }
            }
        }
    }

    /**
     * Drops the bytes received but not yet decoded (after STARTTLS they were sent in plaintext and must
     * never be read as if they came over TLS); returns how many.
     */
    public int discardBuffered() {
        ByteBuf b = internalBuffer();
        int n = b.readableBytes();
        b.skipBytes(n);
        return n;
    }
}
