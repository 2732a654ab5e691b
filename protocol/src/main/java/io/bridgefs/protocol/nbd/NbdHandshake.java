package io.bridgefs.protocol.nbd;

import io.netty.buffer.ByteBuf;

/** What a client sends during the handshake phase: its flags, then option requests. */
public sealed interface NbdHandshake {

    /** The 32-bit client flags sent right after the server greeting. */
    record ClientFlags(int flags) implements NbdHandshake {}

    /** An option request whose data fitted under {@link NbdConstants#MAX_OPTION_LENGTH}. */
    record Option(int option, byte[] data) implements NbdHandshake {
        public String name() { return NbdConstants.optionName(option); }
    }

    /** An option whose announced length was too large; its data is skipped unread, never allocated. */
    record OversizedOption(int option, long length) implements NbdHandshake {}

    /** The option magic was wrong: the stream cannot be resynchronised. */
    record BadMagic(long magic) implements NbdHandshake {}

    /** Writes the server greeting of the fixed newstyle handshake. */
    static void encodeGreeting(ByteBuf out, int handshakeFlags) {
        out.writeLong(NbdConstants.NBDMAGIC);
        out.writeLong(NbdConstants.IHAVEOPT);
        out.writeShort(handshakeFlags);
    }

    /** Client side: writes one option request. */
    static void encodeOption(ByteBuf out, int option, byte[] data) {
        out.writeLong(NbdConstants.IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.writeBytes(data);
    }

    /** Reply to NBD_OPT_EXPORT_NAME: size, transmission flags and, unless NO_ZEROES was agreed, 124 zero bytes. */
    static void encodeExportNameReply(ByteBuf out, long size, int transmissionFlags, boolean noZeroes) {
        out.writeLong(size);
        out.writeShort(transmissionFlags);
        if (!noZeroes) {
            out.writeZero(124);
        }
    }
}
