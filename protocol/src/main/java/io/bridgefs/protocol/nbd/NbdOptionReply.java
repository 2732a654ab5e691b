package io.bridgefs.protocol.nbd;

import io.netty.buffer.ByteBuf;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/** One option reply: magic, option, reply type, length, data. Error types have bit 31 set. */
public record NbdOptionReply(int option, int type, byte[] data) {

    public boolean isError() { return type < 0; }

    public void encode(ByteBuf out) {
        out.writeLong(NbdConstants.OPTION_REPLY_MAGIC);
        out.writeInt(option);
        out.writeInt(type);
        out.writeInt(data.length);
        out.writeBytes(data);
    }

    /** Client side: decodes one reply, or returns null if {@code in} does not yet hold a whole one. */
    public static NbdOptionReply decode(ByteBuf in) {
        if (in.readableBytes() < 20) return null;
        int start = in.readerIndex();
        if (in.getLong(start) != NbdConstants.OPTION_REPLY_MAGIC) {
            throw new IllegalArgumentException("bad option reply magic");
        }
        long length = in.getUnsignedInt(start + 16);
        if (length > NbdConstants.MAX_OPTION_LENGTH) throw new IllegalArgumentException("option reply too long: " + length);
        if (in.readableBytes() < 20 + length) return null;
        in.skipBytes(8);
        int option = in.readInt();
        int type = in.readInt();
        in.skipBytes(4);
        byte[] data = new byte[(int) length];
        in.readBytes(data);
        return new NbdOptionReply(option, type, data);
    }

    public static NbdOptionReply ack(int option) {
        return new NbdOptionReply(option, NbdConstants.NBD_REP_ACK, new byte[0]);
    }

    public static NbdOptionReply error(int option, int errorType, String message) {
        return new NbdOptionReply(option, errorType, message.getBytes(StandardCharsets.UTF_8));
    }

    /** NBD_REP_SERVER: name length, name, then a description for humans. */
    public static NbdOptionReply server(int option, String name, String description) {
        byte[] n = utf8(name);
        byte[] d = utf8(description == null ? "" : description);
        ByteBuffer b = ByteBuffer.allocate(4 + n.length + d.length);
        b.putInt(n.length).put(n).put(d);
        return new NbdOptionReply(option, NbdConstants.NBD_REP_SERVER, b.array());
    }

    public static NbdOptionReply infoExport(int option, long size, int transmissionFlags) {
        ByteBuffer b = ByteBuffer.allocate(12);
        b.putShort((short) NbdConstants.NBD_INFO_EXPORT).putLong(size).putShort((short) transmissionFlags);
        return new NbdOptionReply(option, NbdConstants.NBD_REP_INFO, b.array());
    }

    public static NbdOptionReply infoString(int option, int infoType, String text) {
        byte[] t = utf8(text);
        ByteBuffer b = ByteBuffer.allocate(2 + t.length);
        b.putShort((short) infoType).put(t);
        return new NbdOptionReply(option, NbdConstants.NBD_REP_INFO, b.array());
    }

    public static NbdOptionReply infoBlockSize(int option, int minimum, int preferred, int maximum) {
        ByteBuffer b = ByteBuffer.allocate(14);
        b.putShort((short) NbdConstants.NBD_INFO_BLOCK_SIZE).putInt(minimum).putInt(preferred).putInt(maximum);
        return new NbdOptionReply(option, NbdConstants.NBD_REP_INFO, b.array());
    }

    public static NbdOptionReply metaContext(int option, int id, String name) {
        byte[] n = utf8(name);
        ByteBuffer b = ByteBuffer.allocate(4 + n.length);
        b.putInt(id).put(n);
        return new NbdOptionReply(option, NbdConstants.NBD_REP_META_CONTEXT, b.array());
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
