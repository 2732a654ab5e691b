package io.bridgefs.server.p9;

import io.bridgefs.protocol.p9.P9FrameDecoder;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.group.ChannelGroup;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.flush.FlushConsolidationHandler;

/** Sets up each new 9P connection. Until Tversion fixes msize, frames over 8 KiB are refused. */
public final class P9Listener extends ChannelInitializer<Channel> {
    private final P9ServerContext context;
    private final ChannelGroup connections;
    private final io.bridgefs.server.net.ConnectionGuard guard;

    public P9Listener(P9ServerContext context, ChannelGroup connections, io.bridgefs.server.net.ConnectionGuard guard) {
        this.context = context;
        this.connections = connections;
        this.guard = guard;
    }

    @Override
    protected void initChannel(Channel ch) {
        connections.add(ch);
        guard.install(ch);
        ch.config().setWriteBufferWaterMark(new WriteBufferWaterMark(4 << 20, 16 << 20));
        P9FrameDecoder decoder = new P9FrameDecoder(8192);
        decoder.setCumulator(ByteToMessageDecoder.COMPOSITE_CUMULATOR);
        ch.pipeline().addLast("flush", new FlushConsolidationHandler(64, true))
                .addLast("9p-decoder", decoder)
                .addLast("9p-session", new P9Session(context, decoder));
        io.bridgefs.server.net.ReceiveLowWater.install(ch, "9p-decoder", decoder);
    }
}
