package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Codec;
import io.bridgefs.protocol.p9.P9Message;
import io.bridgefs.protocol.p9.P9Message.*;
import io.bridgefs.protocol.p9.Qid;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;

/** A blocking 9P2000.L client over a plain socket, for requests a kernel client would never send. */
final class RawP9Client implements AutoCloseable {
    final Socket socket;
    final DataInputStream in;
    final OutputStream out;
    int nextTag = 1;

    RawP9Client(int port) throws IOException {
        socket = new Socket("127.0.0.1", port);
        socket.setSoTimeout(20_000);
        in = new DataInputStream(socket.getInputStream());
        out = socket.getOutputStream();
    }

    int tag() { return nextTag++ & 0x7FFF; }

    /** A message as the bytes on the wire (for pipelining many at once with {@link #sendRaw}). */
    static byte[] frame(P9Message m) {
        ByteBuf b = Unpooled.buffer();
        P9Codec.encode(m, b);
        byte[] a = new byte[b.readableBytes()];
        b.readBytes(a);
        return a;
    }

    void send(P9Message m) throws IOException {
        out.write(frame(m));
        out.flush();
    }

    void sendRaw(byte[] frame) throws IOException {
        out.write(frame);
        out.flush();
    }

    P9Message receive() throws Exception {
        byte[] h = new byte[7];
        in.readFully(h);
        ByteBuf hb = Unpooled.wrappedBuffer(h);
        long size = hb.readUnsignedIntLE();
        int type = hb.readUnsignedByte();
        int tag = hb.readUnsignedShortLE();
        byte[] body = new byte[(int) size - 7];
        in.readFully(body);
        return P9Codec.decode(type, tag, Unpooled.wrappedBuffer(body));
    }

    P9Message rpc(P9Message m) throws Exception {
        send(m);
        P9Message r = receive();
        assertEquals(m.tag(), r.tag(), "reply tag");
        return r;
    }

    /** Expects success of the given reply class. */
    <T extends P9Message> T ok(P9Message m, Class<T> want) throws Exception {
        P9Message r = rpc(m);
        if (r instanceof Rlerror e) fail(m.getClass().getSimpleName() + " failed with errno " + e.ecode());
        return want.cast(r);
    }

    /** Expects Rlerror and returns its errno. */
    int error(P9Message m) throws Exception {
        P9Message r = rpc(m);
        if (r instanceof Rlerror e) return e.ecode();
        fail(m.getClass().getSimpleName() + " should have failed, got " + r);
        return 0;
    }

    Qid attach(int msize, String aname, int fid) throws Exception {
        Rversion v = ok(new Tversion(P9.NOTAG, msize, P9.VERSION), Rversion.class);
        assertEquals(P9.VERSION, v.version());
        return ok(new Tattach(tag(), fid, P9.NOFID, "root", aname, 0), Rattach.class).qid();
    }

    Rwalk walk(int fid, int newfid, String... names) throws Exception {
        return ok(new Twalk(tag(), fid, newfid, List.of(names)), Rwalk.class);
    }

    byte[] readAll(int fid, int count) throws Exception {
        java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
        long off = 0;
        while (true) {
            Rread r = ok(new Tread(tag(), fid, off, count), Rread.class);
            int n = r.data().readableBytes();
            if (n == 0) return b.toByteArray();
            byte[] a = new byte[n];
            r.data().readBytes(a);
            b.write(a);
            off += n;
        }
    }

    void write(int fid, long offset, String s) throws Exception {
        byte[] d = s.getBytes(StandardCharsets.UTF_8);
        assertEquals(d.length, ok(new Twrite(tag(), fid, offset, Unpooled.wrappedBuffer(d)), Rwrite.class).count());
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
