package io.bridgefs.server.net;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.p9.P9FrameDecoder;
import io.bridgefs.protocol.p9.P9Message;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.util.ReferenceCountUtil;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The receive low-water mark on a real epoll socket: raised to what a large 9P frame still lacks, so the
 * bytes that come meanwhile wake nobody; lowered when the frame is whole or the guard looks; and a
 * frame larger than the mark's cap or the socket's buffer still comes through.
 */
class ReceiveLowWaterTest {
    private EventLoopGroup group;
    private Channel server;
    private volatile Channel conn;
    private final AtomicInteger reads = new AtomicInteger();            // times the socket woke the reader (read loops)
    private final BlockingQueue<P9Message> decoded = new LinkedBlockingQueue<>();

    @BeforeEach
    void start() throws Exception {
        assertTrue(Epoll.isAvailable(), "the native epoll transport is needed (Linux): " + Epoll.unavailabilityCause());
        group = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        server = new ServerBootstrap().group(group).channel(EpollServerSocketChannel.class).childHandler(new ChannelInitializer<>() {
            @Override
            protected void initChannel(Channel ch) {
                P9FrameDecoder decoder = new P9FrameDecoder(16 << 20);
                decoder.setCumulator(ByteToMessageDecoder.COMPOSITE_CUMULATOR);
                ch.pipeline().addLast(new ChannelInboundHandlerAdapter() {
                    @Override
                    public void channelReadComplete(ChannelHandlerContext ctx) {
                        reads.incrementAndGet();
                        ctx.fireChannelReadComplete();
                    }
                }).addLast("decoder", decoder).addLast(new ChannelInboundHandlerAdapter() {
                    @Override
                    public void channelRead(ChannelHandlerContext ctx, Object msg) {
                        decoded.add((P9Message) msg);
                        if (msg instanceof P9Message.Twrite w) ReferenceCountUtil.release(w.data());
                    }
                });
                ReceiveLowWater.install(ch, "decoder", decoder);
                conn = ch;
            }
        }).bind(new InetSocketAddress("127.0.0.1", 0)).sync().channel();
    }

    @AfterEach
    void stop() throws Exception {
        server.close().sync();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }

    /** A Twrite frame of {@code data} bytes (fid 1, offset 0), its data all 7s. */
    private static byte[] twrite(int data) {
        ByteBuffer b = ByteBuffer.allocate(23 + data).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(23 + data).put((byte) 118).putShort((short) 1).putInt(1).putLong(0).putInt(data);
        while (b.hasRemaining()) b.put((byte) 7);
        return b.array();
    }

    private <T> T onLoop(Callable<T> c) throws Exception {
        return conn.eventLoop().submit(c).get(5, TimeUnit.SECONDS);
    }

    private int mark() throws Exception {
        if (conn == null) return 0;             // not accepted yet
        return onLoop(() -> conn.config().getOption(ReceiveLowWater.SO_RCVLOWAT));
    }

    private static void await(String what, BooleanSupplier cond) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > end) fail("timed out waiting until " + what);
            Thread.sleep(5);
        }
    }

    private void awaitMark(String what, int want) throws InterruptedException {
        await(what, () -> {
            try {
                return mark() == want;
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        });
    }

    /** Connects and sends the first 10,000 bytes of frame {@code f}: the mark is raised to the rest. */
    private Socket startFrame(byte[] f) throws Exception {
        Socket s = new Socket("127.0.0.1", ((InetSocketAddress) server.localAddress()).getPort());
        s.setTcpNoDelay(true);
        s.getOutputStream().write(f, 0, 10_000);
        s.getOutputStream().flush();
        awaitMark("the mark is raised to the frame's rest", f.length - 10_000);
        return s;
    }

    @Test
    void bytesOfAPartlyReadLargeFrameWakeNobodyUntilTheFrameIsWhole() throws Exception {
        byte[] f = twrite(300_000);
        try (Socket s = startFrame(f)) {
            OutputStream out = s.getOutputStream();
            int before = reads.get(), sent = 10_000;
            for (; sent < 200_000; sent += 4096) {      // segment by segment, as a slow sender
                out.write(f, sent, 4096);
                out.flush();
                Thread.sleep(1);
            }
            Thread.sleep(200);
            assertEquals(before, reads.get(), "bytes below the mark woke the reader");
            assertTrue(decoded.isEmpty());
            out.write(f, sent, f.length - sent);
            out.flush();
            P9Message m = decoded.poll(5, TimeUnit.SECONDS);
            assertInstanceOf(P9Message.Twrite.class, m, "the frame, once whole");
            assertTrue(reads.get() - before <= 2, "the frame's rest came in " + (reads.get() - before) + " read loops");
            assertEquals(1, mark(), "no frame is partly read: the mark is back to 1");
            // a small frame's rest is not worth the mark
            out.write(twrite(40_000), 0, 30_000);
            out.flush();
            Thread.sleep(100);
            assertEquals(1, mark(), "10 KiB still to come: below the mark's minimum");
        }
    }

    @Test
    void theGuardsLookLowersTheMarkUntilTheFrameIsWhole() throws Exception {
        byte[] f = twrite(300_000);
        try (Socket s = startFrame(f)) {
            OutputStream out = s.getOutputStream();
            out.write(f, 10_000, 50_000);      // held back by the mark
            out.flush();
            Thread.sleep(100);
            int before = reads.get();
            assertTrue(onLoop(() -> ReceiveLowWater.release(conn)), "the mark was raised: the look's count is not the client's pace");
            assertEquals(1, mark());
            await("the held bytes are read once the mark is down", () -> reads.get() > before);
            assertFalse(onLoop(() -> ReceiveLowWater.release(conn)), "already down");
            out.write(f, 60_000, 100_000);
            out.flush();
            Thread.sleep(100);
            assertEquals(1, mark(), "kept down for the rest of this frame");
            out.write(f, 160_000, f.length - 160_000);
            out.write(f, 0, 10_000);           // the next frame, partly
            out.flush();
            assertInstanceOf(P9Message.Twrite.class, decoded.poll(5, TimeUnit.SECONDS));
            awaitMark("the next frame raises the mark again", f.length - 10_000);
        }
    }

    /** Under TLS what a frame lacks in plaintext may exceed what the socket will still bring: no mark there. */
    @Test
    void notUnderTls() {
        for (boolean tls : new boolean[] {false, true}) {
            io.netty.channel.epoll.EpollSocketChannel ch = new io.netty.channel.epoll.EpollSocketChannel();
            try {
                if (tls) ch.pipeline().addLast(io.bridgefs.server.tls.TlsHandler.NAME, new ChannelInboundHandlerAdapter());
                P9FrameDecoder d = new P9FrameDecoder(1 << 20);
                ch.pipeline().addLast("decoder", d);
                ReceiveLowWater.install(ch, "decoder", d);
                assertEquals(!tls, ch.pipeline().get(ReceiveLowWater.NAME) != null, tls ? "installed under TLS" : "not installed on TCP");
            } finally {
                ch.unsafe().closeForcibly();
            }
        }
    }

    @Test
    void aFrameLargerThanTheMarksCapAndTheSocketsBufferComesThrough() throws Exception {
        byte[] f = twrite(12 << 20);
        try (Socket s = new Socket("127.0.0.1", ((InetSocketAddress) server.localAddress()).getPort())) {
            await("accepted", () -> conn != null);
            onLoop(() -> conn.config().setOption(io.netty.channel.ChannelOption.SO_RCVBUF, 128 << 10));    // far below the mark's cap
            OutputStream out = s.getOutputStream();
            for (int round = 0; round < 2; round++) {
                for (int off = 0; off < f.length; off += 1 << 20) {
                    out.write(f, off, Math.min(1 << 20, f.length - off));
                    out.flush();
                }
                P9Message m = decoded.poll(10, TimeUnit.SECONDS);
                assertInstanceOf(P9Message.Twrite.class, m, "frame " + round + " came whole");
            }
            assertEquals(1, mark());
        }
    }
}
