package io.bridgefs.server.net;

import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * On a listening socket: an accept that fails (the process out of descriptors, EMFILE) stops accepting
 * for a second, as Netty's acceptor does, and is logged in one line at most every 10 s with how many
 * failed meanwhile, instead of a stack trace per attempt. The connections wait in the backlog.
 */
@ChannelHandler.Sharable
final class AcceptErrors extends ChannelInboundHandlerAdapter {
    private static final Logger log = LoggerFactory.getLogger(AcceptErrors.class);
    private static final long LOG_INTERVAL_NS = TimeUnit.SECONDS.toNanos(10);
    private final String listener;
    private final AtomicLong lastLog = new AtomicLong(System.nanoTime() - LOG_INTERVAL_NS - 1);
    private final AtomicLong failed = new AtomicLong();

    AcceptErrors(String listener) {
        this.listener = listener;
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        long n = failed.incrementAndGet();
        long now = System.nanoTime();
        long last = lastLog.get();
        if (now - last > LOG_INTERVAL_NS && lastLog.compareAndSet(last, now)) {
            log.warn("{}: cannot accept connections: {} ({} failed accepts in all; pausing 1 s each time, logged every 10 s at most)",
                    listener, cause.getMessage(), n);
        }
        var config = ctx.channel().config();
        if (config.isAutoRead()) {
            config.setAutoRead(false);
            ctx.channel().eventLoop().schedule(() -> { config.setAutoRead(true); }, 1, TimeUnit.SECONDS);
        }
    }
}
