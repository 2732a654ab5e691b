package io.bridgefs.server.nbd;

import io.bridgefs.protocol.nbd.NbdHandshakeDecoder;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.group.ChannelGroup;
import io.netty.handler.flush.FlushConsolidationHandler;

/** Sets up each new NBD connection: flush consolidation, then the handshake phase. */
public final class NbdListener extends ChannelInitializer<Channel> {
    private final NbdServerContext context;
    private final ChannelGroup connections;
    private final io.bridgefs.server.net.ConnectionGuard guard;

    public NbdListener(NbdServerContext context, ChannelGroup connections, io.bridgefs.server.net.ConnectionGuard guard) {
        this.context = context;
        this.connections = connections;
        this.guard = guard;
    }

    @Override
    protected void initChannel(Channel ch) {
        connections.add(ch);
        guard.install(ch);
        ch.config().setWriteBufferWaterMark(new WriteBufferWaterMark(4 << 20, 16 << 20));
        ch.pipeline()
                .addLast("flush", new FlushConsolidationHandler(64, true))
                .addLast(NbdHandshakeHandler.DECODER, new NbdHandshakeDecoder())
                .addLast("nbd-handshake", new NbdHandshakeHandler(context));
    }
}
