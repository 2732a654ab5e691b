package io.bridgefs.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandler;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayList;
import java.util.List;

/** Feeds bytes to a decoder through an EmbeddedChannel in given fragment sizes and collects what comes out. */
public final class Fragments {
    private Fragments() {}

    public static List<Object> decode(ChannelHandler decoder, byte[] bytes, List<Integer> cuts) {
        EmbeddedChannel ch = new EmbeddedChannel(decoder);
        int pos = 0;
        int i = 0;
        while (pos < bytes.length) {
            int n = cuts.isEmpty() ? bytes.length : Math.max(1, cuts.get(i++ % cuts.size()));
            n = Math.min(n, bytes.length - pos);
            ch.writeInbound(Unpooled.wrappedBuffer(bytes, pos, n));
            pos += n;
        }
        List<Object> out = new ArrayList<>();
        Object m;
        while ((m = ch.readInbound()) != null) out.add(m);
        ch.finishAndReleaseAll();
        return out;
    }

    public static byte[] bytes(ByteBuf b) {
        byte[] a = new byte[b.readableBytes()];
        b.getBytes(b.readerIndex(), a);
        b.release();
        return a;
    }

    public static void releaseAll(List<Object> msgs) {
        msgs.forEach(ReferenceCountUtil::release);
    }
}
