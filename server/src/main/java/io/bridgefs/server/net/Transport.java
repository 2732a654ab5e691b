package io.bridgefs.server.net;

import io.bridgefs.server.config.ListenAddress;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import java.io.IOException;
import java.nio.file.Files;

/** Event loops and listening sockets: native epoll where available (also for unix sockets), NIO otherwise. */
public final class Transport implements AutoCloseable {
    /**
     * A connection's socket takes at most this many bytes not yet sent (TCP_NOTSENT_LOWAT). Without a
     * bound a reply far ahead of the peer's receive window waits in the socket and is sent later from the
     * peer's acknowledgements, on the peer's CPU: nbdcopy used 450-520 ms of CPU per warm GiB against
     * bridgefs, 330-380 against nbdkit. With 64 KiB, 245-264 ms and 1.4x the MiB/s, the server's own CPU
     * 210-340 ms against 180-220 (16 KiB to 256 KiB tried, 64 ran best; 4 KiB random reads unchanged).
     * A client that stops reading leaves at most this much unsent in the kernel (beyond what is in flight).
     */
    static final long NOTSENT_LOWAT = 64 << 10;
    private final EventLoopGroup boss;
    private final EventLoopGroup workers;
    private final boolean epoll;

    public Transport(int workerThreads) {
        this.epoll = Epoll.isAvailable();
        var factory = epoll ? EpollIoHandler.newFactory() : NioIoHandler.newFactory();
        this.boss = new MultiThreadIoEventLoopGroup(1, serverThreads(), factory);
        this.workers = new MultiThreadIoEventLoopGroup(workerThreads, serverThreads(), factory);
    }

    /**
     * Netty's own threads (named, and with the priority, Netty gives them by default), each starting as
     * the server: a new thread takes its creator's credentials ({@link io.bridgefs.server.posix.ServerThreads}).
     */
    private static java.util.concurrent.ThreadFactory serverThreads() {
        var netty = new io.netty.util.concurrent.DefaultThreadFactory(MultiThreadIoEventLoopGroup.class, Thread.MAX_PRIORITY);
        return r -> netty.newThread(io.bridgefs.server.posix.ServerThreads.startingAsServer(r));
    }

    public boolean nativeEpoll() { return epoll; }

    /** Listens on {@code address}; every connection's pipeline starts with {@link ServerIdentity#EVERY_EVENT}. */
    public Channel listen(ListenAddress address, ChannelInitializer<Channel> init) throws IOException {
        return listen(address, init, ServerIdentity.EVERY_EVENT);
    }

    /** Listens on {@code address}; {@code identity} first in every connection's pipeline, then what {@code init} adds. */
    public Channel listen(ListenAddress address, ChannelInitializer<Channel> init, ServerIdentity identity) throws IOException {
        ChannelInitializer<Channel> guarded = new ChannelInitializer<>() {
            @Override
            protected void initChannel(Channel ch) {
                io.bridgefs.server.posix.Credentials.serverAgain();    // the worker may hold a walk's user: set-up runs as the server
                ch.pipeline().addLast(ServerIdentity.NAME, identity).addLast(init);
            }
        };
        ServerBootstrap b = new ServerBootstrap().group(boss, workers).handler(new AcceptErrors(address.toString())).childHandler(guarded);
        int inherited = address.isUnix() || !epoll ? -1 : io.bridgefs.server.posix.Inherited.listenFd(address.toString());
        if (address.isUnix()) {
            if (!epoll) throw new IOException("unix sockets need the native epoll transport, which is not available here");
            Files.deleteIfExists(address.unixPath());
            b.channel(EpollServerDomainSocketChannel.class);
        } else {
            int fd = inherited;
            if (fd >= 0) b.channelFactory(() -> new EpollServerSocketChannel(fd));   // bound by root before --user
            else b.channel(epoll ? EpollServerSocketChannel.class : NioServerSocketChannel.class);
            b.option(ChannelOption.SO_REUSEADDR, true)
                    .childOption(ChannelOption.TCP_NODELAY, true)
                    .childOption(ChannelOption.SO_KEEPALIVE, true);
            if (epoll) b.childOption(io.netty.channel.epoll.EpollChannelOption.TCP_NOTSENT_LOWAT, NOTSENT_LOWAT);
        }
        if (inherited >= 0) {
            // bound by the root process before it became --user: adopt the listening socket as it is
            try {
                return b.register().sync().channel();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while adopting the socket of " + address);
            } catch (Exception e) {
                throw new IOException("cannot serve on the inherited socket of " + address + ": " + e.getMessage(), e);
            }
        }
        try {
            Channel ch = b.bind(address.toSocketAddress()).sync().channel();
            if (address.isUnix()) {
                try {
                    socketPermissions(address);
                } catch (IOException | RuntimeException e) {
                    ch.close().syncUninterruptibly();
                    throw new IOException("cannot set the permissions of " + address.unixPath() + ": " + e.getMessage(), e);
                }
            }
            return ch;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while binding " + address);
        } catch (Exception e) {
            throw new IOException("cannot listen on " + address + ": " + e.getMessage(), e);
        }
    }

    /** mode= and group= of a unix socket: who may connect is who may open the file. */
    private static void socketPermissions(ListenAddress a) throws IOException {
        java.nio.file.Path p = a.unixPath();
        if (a.unixGroup() != null) {
            var group = p.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByGroupName(a.unixGroup());
            Files.getFileAttributeView(p, java.nio.file.attribute.PosixFileAttributeView.class,
                    java.nio.file.LinkOption.NOFOLLOW_LINKS).setGroup(group);
        }
        if (a.unixMode() != null) {
            java.util.Set<java.nio.file.attribute.PosixFilePermission> perms = java.util.EnumSet.noneOf(java.nio.file.attribute.PosixFilePermission.class);
            java.nio.file.attribute.PosixFilePermission[] order = {
                    java.nio.file.attribute.PosixFilePermission.OTHERS_EXECUTE, java.nio.file.attribute.PosixFilePermission.OTHERS_WRITE,
                    java.nio.file.attribute.PosixFilePermission.OTHERS_READ, java.nio.file.attribute.PosixFilePermission.GROUP_EXECUTE,
                    java.nio.file.attribute.PosixFilePermission.GROUP_WRITE, java.nio.file.attribute.PosixFilePermission.GROUP_READ,
                    java.nio.file.attribute.PosixFilePermission.OWNER_EXECUTE, java.nio.file.attribute.PosixFilePermission.OWNER_WRITE,
                    java.nio.file.attribute.PosixFilePermission.OWNER_READ};
            for (int bit = 0; bit < 9; bit++) if ((a.unixMode() & (1 << bit)) != 0) perms.add(order[bit]);
            Files.setPosixFilePermissions(p, perms);
        }
    }

    @Override
    public void close() {
        boss.shutdownGracefully(0, 2, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
        workers.shutdownGracefully(0, 2, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
    }
}
