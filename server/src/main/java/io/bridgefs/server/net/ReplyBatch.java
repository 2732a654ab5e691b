package io.bridgefs.server.net;

import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;

/**
 * Replies made while a connection's read batch is being handled (answered on the event loop at once)
 * are written without a flush and go out together when the batch ends: one send for many replies
 * instead of one each. Replies made at any other time (from the executor) are flushed at once.
 * Confined to the connection's event loop.
 */
public final class ReplyBatch {
    private boolean reading;
    private boolean unflushed;

    /** Runs {@code handle} as part of the current read batch. */
    public void during(Runnable handle) {
        reading = true;
        try {
            handle.run();
        } finally {
            reading = false;
        }
    }

    /** Writes a reply: held for the end of the batch if one is being read, else flushed now. */
    public ChannelFuture write(ChannelHandlerContext ctx, Object reply) {
        if (!reading) return ctx.writeAndFlush(reply);
        unflushed = true;
        return ctx.write(reply);
    }

    /** At channelReadComplete: sends what the batch answered. */
    public void readComplete(ChannelHandlerContext ctx) {
        if (unflushed) {
            unflushed = false;
            ctx.flush();
        }
    }
}
