package io.bridgefs.server.net;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.server.posix.Credentials;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A network thread that still holds the last 9P walk's user is the server again before any other
 * connection's handlers see an event (NBD, metrics: every event), and before a 9P connection's handlers
 * see anything but its requests. The handlers here record the thread's fsuid as the kernel has it.
 */
class ServerIdentityTest {
    /** Records the calling thread's fsuid at each event it sees. */
    static final class Recorder extends ChannelInboundHandlerAdapter {
        final List<String> seen = new ArrayList<>();

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) { seen.add("read " + Credentials.fsuid()); }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) { seen.add("readComplete " + Credentials.fsuid()); }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) { seen.add("event " + Credentials.fsuid()); }

        @Override
        public void channelWritabilityChanged(ChannelHandlerContext ctx) { seen.add("writability " + Credentials.fsuid()); }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) { seen.add("exception " + Credentials.fsuid()); }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) { seen.add("inactive " + Credentials.fsuid()); }
    }

    /** Each event with the thread holding uid 1000 first, as a 9P walk on it leaves it. */
    static List<String> eventsHolding1000(ServerIdentity guard) throws Exception {
        Recorder r = new Recorder();
        EmbeddedChannel ch = new EmbeddedChannel(guard, r);
        Credentials.Identity u = Credentials.identity(1000);
        try {
            Credentials.hold(u);
            ch.pipeline().fireChannelRead("request");
            Credentials.hold(u);
            ch.pipeline().fireChannelReadComplete();
            Credentials.hold(u);
            ch.pipeline().fireUserEventTriggered("idle");
            Credentials.hold(u);
            ch.pipeline().fireChannelWritabilityChanged();
            Credentials.hold(u);
            ch.pipeline().fireExceptionCaught(new java.io.IOException("reset"));
            Credentials.hold(u);
            ch.close();
            return r.seen;
        } finally {
            Credentials.serverAgain();
        }
    }

    static boolean switchesUsers() {
        return io.bridgefs.server.posix.SwitchesUsers.orSay("ServerIdentityTest:");
    }

    @Test
    void otherConnectionsSeeEveryEventAsTheServer() throws Exception {
        if (!switchesUsers()) return;
        assertEquals(List.of("read 0", "readComplete 0", "event 0", "writability 0", "exception 0", "inactive 0"),
                eventsHolding1000(ServerIdentity.EVERY_EVENT));
        assertEquals(0, Credentials.fsuid());
        assertNull(Credentials.held());
    }

    @Test
    void a9PConnectionSortsItsOwnRequestsAndSeesEverythingElseAsTheServer() throws Exception {
        if (!switchesUsers()) return;
        assertEquals(List.of("read 1000", "readComplete 1000", "event 0", "writability 0", "exception 0", "inactive 0"),
                eventsHolding1000(ServerIdentity.BUT_REQUESTS));
        assertEquals(0, Credentials.fsuid());
    }

    @Test
    void holdGoesStraightFromOneUserToAnotherAndBack() throws Exception {
        if (!switchesUsers()) return;
        try {
            Credentials.hold(Credentials.identity(1000));
            assertEquals(1000, Credentials.fsuid());
            assertEquals(1000, Credentials.held().uid());
            Credentials.hold(Credentials.identity(1001));
            assertEquals(1001, Credentials.fsuid(), "from one user straight to another");
            Credentials.hold(new Credentials.Identity(1001, 1001, new int[] {1001}));
            assertEquals(1001, Credentials.fsuid());
            Credentials.serverAgain();
            assertEquals(0, Credentials.fsuid());
            assertNull(Credentials.held());
        } finally {
            Credentials.serverAgain();
        }
    }
}
