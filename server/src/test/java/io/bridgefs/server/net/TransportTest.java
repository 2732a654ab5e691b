package io.bridgefs.server.net;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.server.config.ListenAddress;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollChannelOption;
import java.net.Socket;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The options every accepted TCP connection gets: replies sent at once, and a bounded unsent queue in the kernel. */
class TransportTest {
    @Test
    void anAcceptedConnectionHasNoDelayAndABoundOnUnsentBytes() throws Exception {
        assertTrue(Epoll.isAvailable(), "the native epoll transport is needed (Linux): " + Epoll.unavailabilityCause());
        CompletableFuture<Channel> accepted = new CompletableFuture<>();
        try (Transport transport = new Transport(1)) {
            Channel listener = transport.listen(ListenAddress.parse("127.0.0.1:0"), new ChannelInitializer<>() {
                @Override
                protected void initChannel(Channel ch) { accepted.complete(ch); }
            });
            try (Socket client = new Socket()) {
                client.connect(listener.localAddress());
                Channel ch = accepted.get(10, TimeUnit.SECONDS);
                assertEquals(Boolean.TRUE, ch.config().getOption(ChannelOption.TCP_NODELAY));
                assertEquals(Transport.NOTSENT_LOWAT, ch.config().getOption(EpollChannelOption.TCP_NOTSENT_LOWAT));
            } finally {
                listener.close().sync();
            }
        }
    }
}
