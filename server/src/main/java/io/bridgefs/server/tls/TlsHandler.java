package io.bridgefs.server.tls;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.util.ReferenceCountUtil;
import java.io.IOException;
import org.bouncycastle.tls.TlsServerProtocol;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * TLS on one connection after STARTTLS: BouncyCastle's {@link TlsServerProtocol} in its non-blocking
 * mode, bytes offered as they arrive and records read out as they are made. Inbound, decrypted
 * application data goes on as ByteBufs; outbound, every ByteBuf is encrypted (a copy: zero-copy read
 * replies are copied here, and their frames unpinned once the ciphertext has gone, through the write's
 * promise). A failed handshake is logged once with the peer and the reason and closes the connection;
 * a client that closes without close_notify (qemu-nbd's clients do) is no error.
 */
public final class TlsHandler extends ChannelDuplexHandler {
    private static final Logger log = LoggerFactory.getLogger(TlsHandler.class);
    public static final String NAME = "tls";

    /** Fired inbound once the handshake is complete. */
    public record Established(String identity, String protocol) {}

    private final NbdTls tls;
    private final PeerServer server;
    private final TlsServerProtocol protocol = new TlsServerProtocol();
    private boolean established;
    private boolean failed;

    public TlsHandler(NbdTls tls) {
        this.tls = tls;
        this.server = tls.newServer();
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) throws Exception {
        protocol.accept(server);
        drainOutput(ctx, null);
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof ByteBuf in)) {
            ctx.fireChannelRead(msg);
            return;
        }
        try {
            if (failed) return;
            if (in.hasArray()) {
                protocol.offerInput(in.array(), in.arrayOffset() + in.readerIndex(), in.readableBytes());
            } else {
                byte[] b = new byte[in.readableBytes()];
                in.readBytes(b);
                protocol.offerInput(b);
            }
        } catch (IOException | RuntimeException e) {
            fail(ctx, e);
            return;
        } finally {
            ReferenceCountUtil.release(in);
        }
        drainOutput(ctx, null);
        if (!established && protocol.isConnected() && !protocol.isHandshaking()) {
            established = true;
            tls.handshakesOk.incrementAndGet();
            tls.active.incrementAndGet();
            String version = protocolVersion();
            log.info("{}: TLS established ({}){}", ctx.channel().remoteAddress(), version,
                    server.identity() != null ? " as '" + server.identity() + "'" : "");
            ctx.fireUserEventTriggered(new Established(server.identity(), version));
        }
        int n = protocol.getAvailableInputBytes();
        if (n > 0) {
            ByteBuf plain = ctx.alloc().buffer(n);
            protocol.readInput(plain.nioBuffer(0, n), n);
            plain.writerIndex(n);
            ctx.fireChannelRead(plain);
        }
        if (protocol.isClosed()) ctx.close();
    }

    private String protocolVersion() {
        try {
            return server.getServerVersion().getName();
        } catch (Exception e) {
            return "TLS";
        }
    }

    private void fail(ChannelHandlerContext ctx, Throwable e) {
        failed = true;
        if (!established) {
            tls.handshakesFailed.incrementAndGet();
            String why = server.failure() != null ? server.failure() : e.getMessage() != null ? e.getMessage() : e.toString();
            log.warn("{}: TLS handshake failed: {}", ctx.channel().remoteAddress(), why);
        } else {
            log.info("{}: TLS stream error: {}", ctx.channel().remoteAddress(), e.getMessage() != null ? e.getMessage() : e.toString());
        }
        drainOutput(ctx, null);          // the alert, if one was made
        ctx.close();
    }

    /** Writes what the engine has produced (records, alerts) to the socket. */
    private void drainOutput(ChannelHandlerContext ctx, ChannelPromise promise) {
        int n = protocol.getAvailableOutputBytes();
        if (n == 0) {
            if (promise != null) promise.setSuccess();
            return;
        }
        ByteBuf out = ctx.alloc().directBuffer(n);
        protocol.readOutput(out.nioBuffer(0, n), n);      // straight into the socket's buffer
        out.writerIndex(n);
        if (promise != null) ctx.write(out, promise);
        else ctx.writeAndFlush(out);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        if (!(msg instanceof ByteBuf buf)) {
            ctx.write(msg, promise);
            return;
        }
        try {
            if (failed || protocol.isClosed()) {
                promise.setFailure(new IOException("TLS connection closed"));
                return;
            }
            byte[] b = new byte[Math.min(buf.readableBytes(), 1 << 20)];
            while (buf.isReadable()) {
                int n = Math.min(b.length, buf.readableBytes());
                buf.readBytes(b, 0, n);
                protocol.writeApplicationData(b, 0, n);
            }
        } catch (IOException | RuntimeException e) {
            promise.setFailure(e);
            fail(ctx, e);
            return;
        } finally {
            ReferenceCountUtil.release(buf);
        }
        drainOutput(ctx, promise);
    }

    @Override
    public void close(ChannelHandlerContext ctx, ChannelPromise promise) {
        if (!failed && !protocol.isClosed()) {
            try {
                protocol.close();                // close_notify
                drainOutput(ctx, null);
            } catch (IOException | RuntimeException e) {
                // closing anyway
            }
        }
        ctx.close(promise);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        if (established) tls.active.decrementAndGet();
        established = false;
        if (!failed && !protocol.isConnected() && protocol.isHandshaking()) {
            tls.handshakesFailed.incrementAndGet();
            log.warn("{}: TLS handshake failed: the client closed the connection{}", ctx.channel().remoteAddress(),
                    server.failure() != null ? " (" + server.failure() + ")" : "");
            failed = true;
        }
        ctx.fireChannelInactive();
    }
}
