package io.bridgefs.server.net;

import io.bridgefs.server.posix.Credentials;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;

/**
 * Puts a network thread back to the server's own credentials before a connection's own handlers see an
 * event. A 9P walk answered on the network thread keeps its user's file-system credentials on that
 * thread afterwards ({@link Credentials#hold}: a client walks as the same user again and again, and
 * each switch there and back costs eight system calls); anything else the thread runs must be the
 * server again first. {@link Transport} puts this handler in every connection's pipeline, ahead of the
 * protocol's handlers: NBD and metrics connections restore on every event; a 9P connection on every
 * event but its reads, whose requests on the network thread make no call the kernel checks against the
 * caller's credentials but the walk and a directory's open, which set their own (see {@code P9Ops.tryFast}).
 */
@ChannelHandler.Sharable
public final class ServerIdentity extends ChannelInboundHandlerAdapter {
    public static final String NAME = "server-identity";
    /** Restores before every event. */
    public static final ServerIdentity EVERY_EVENT = new ServerIdentity(true);
    /** Restores before every event but reads and their end (a 9P connection's requests). */
    public static final ServerIdentity BUT_REQUESTS = new ServerIdentity(false);
    private final boolean reads;

    private ServerIdentity(boolean reads) {
        this.reads = reads;
    }

    @Override
    public void channelRegistered(ChannelHandlerContext ctx) {
        Credentials.serverAgain();
        ctx.fireChannelRegistered();
    }

    @Override
    public void channelUnregistered(ChannelHandlerContext ctx) {
        Credentials.serverAgain();
        ctx.fireChannelUnregistered();
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        Credentials.serverAgain();
        ctx.fireChannelActive();
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        Credentials.serverAgain();
        ctx.fireChannelInactive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (reads) Credentials.serverAgain();
        ctx.fireChannelRead(msg);
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        if (reads) Credentials.serverAgain();
        ctx.fireChannelReadComplete();
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        Credentials.serverAgain();
        ctx.fireUserEventTriggered(evt);
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        Credentials.serverAgain();
        ctx.fireChannelWritabilityChanged();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        Credentials.serverAgain();
        ctx.fireExceptionCaught(cause);
    }
}
