package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.nbd.NbdConstants;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;

/**
 * A deliberately low-level NBD client over a plain socket, so tests can send what real clients never
 * would: bad magics, oversized lengths, truncated payloads. Written from the spec, independent of the
 * server's codec classes except for the constants.
 */
final class RawNbdClient implements AutoCloseable {
    final Socket socket;
    final DataInputStream in;
    final DataOutputStream out;

    RawNbdClient(int port) throws IOException {
        socket = new Socket("127.0.0.1", port);
        socket.setSoTimeout(20_000);
        socket.setTcpNoDelay(true);
        in = new DataInputStream(socket.getInputStream());
        out = new DataOutputStream(socket.getOutputStream());
        assertEquals(NbdConstants.NBDMAGIC, in.readLong());
        assertEquals(NbdConstants.IHAVEOPT, in.readLong());
        int flags = in.readUnsignedShort();
        assertEquals(NbdConstants.NBD_FLAG_FIXED_NEWSTYLE | NbdConstants.NBD_FLAG_NO_ZEROES, flags);
    }

    void clientFlags(int flags) throws IOException {
        out.writeInt(flags);
        out.flush();
    }

    void option(int option, byte[] data) throws IOException {
        out.writeLong(NbdConstants.IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    record OptReply(int option, int type, byte[] data) {}

    OptReply optReply() throws IOException {
        assertEquals(NbdConstants.OPTION_REPLY_MAGIC, in.readLong());
        int option = in.readInt();
        int type = in.readInt();
        int len = in.readInt();
        assertTrue(len >= 0 && len < 1 << 20, "reply length " + len);
        byte[] data = new byte[len];
        in.readFully(data);
        return new OptReply(option, type, data);
    }

    static byte[] infoRequest(String export, int... infos) {
        byte[] n = export.getBytes(StandardCharsets.UTF_8);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 + n.length + 2 + 2 * infos.length);
        b.putInt(n.length).put(n).putShort((short) infos.length);
        for (int i : infos) b.putShort((short) i);
        return b.array();
    }

    static byte[] metaContext(String export, String... queries) {
        java.io.ByteArrayOutputStream bo = new java.io.ByteArrayOutputStream();
        DataOutputStream d = new DataOutputStream(bo);
        try {
            byte[] n = export.getBytes(StandardCharsets.UTF_8);
            d.writeInt(n.length);
            d.write(n);
            d.writeInt(queries.length);
            for (String q : queries) {
                byte[] qb = q.getBytes(StandardCharsets.UTF_8);
                d.writeInt(qb.length);
                d.write(qb);
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return bo.toByteArray();
    }

    /** NBD_OPT_GO; returns the export size and transmission flags, or fails. */
    long[] go(String export) throws IOException {
        option(NbdConstants.NBD_OPT_GO, infoRequest(export, NbdConstants.NBD_INFO_BLOCK_SIZE));
        long size = -1, flags = -1;
        while (true) {
            OptReply r = optReply();
            if (r.type() == NbdConstants.NBD_REP_ACK) break;
            assertEquals(NbdConstants.NBD_REP_INFO, r.type(), "GO reply type");
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(r.data());
            if (b.getShort() == NbdConstants.NBD_INFO_EXPORT) {
                size = b.getLong();
                flags = b.getShort() & 0xFFFF;
            }
        }
        return new long[] {size, flags};
    }

    void request(int type, int flags, long cookie, long offset, long length) throws IOException {
        out.writeInt(NbdConstants.NBD_REQUEST_MAGIC);
        out.writeShort(flags);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeLong(offset);
        out.writeInt((int) length);
    }

    void write(long cookie, long offset, byte[] data) throws IOException {
        request(NbdConstants.NBD_CMD_WRITE, 0, cookie, offset, data.length);
        out.write(data);
        out.flush();
    }

    record Reply(long cookie, int error, int type, byte[] data) {}

    /** Reads one simple reply (with {@code readLength} data bytes if it succeeded) or structured chunk. */
    Reply reply(int readLength) throws IOException {
        int magic = in.readInt();
        if (magic == NbdConstants.NBD_SIMPLE_REPLY_MAGIC) {
            int error = in.readInt();
            long cookie = in.readLong();
            byte[] data = new byte[error == 0 ? readLength : 0];
            in.readFully(data);
            return new Reply(cookie, error, -1, data);
        }
        assertEquals(NbdConstants.NBD_STRUCTURED_REPLY_MAGIC, magic, "reply magic");
        in.readUnsignedShort();
        int type = in.readUnsignedShort();
        long cookie = in.readLong();
        int len = in.readInt();
        byte[] data = new byte[len];
        in.readFully(data);
        int error = (type & 0x8000) != 0 ? java.nio.ByteBuffer.wrap(data).getInt() : 0;
        return new Reply(cookie, error, type, data);
    }

    /** True if the server closed the connection (EOF or reset) within the socket timeout. */
    boolean closedByServer() throws IOException {
        try {
            return in.read() < 0;
        } catch (EOFException | java.net.SocketException e) {
            return true;
        } catch (SocketTimeoutException e) {
            return false;
        }
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
