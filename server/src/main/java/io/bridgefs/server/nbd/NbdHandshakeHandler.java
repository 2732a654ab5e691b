package io.bridgefs.server.nbd;

import static io.bridgefs.protocol.nbd.NbdConstants.*;

import io.bridgefs.protocol.nbd.NbdHandshake;
import io.bridgefs.protocol.nbd.NbdOptionData;
import io.bridgefs.protocol.nbd.NbdOptionReply;
import io.bridgefs.protocol.nbd.NbdRequestDecoder;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fixed newstyle handshake: greeting, client flags, option haggling. Every option reply is
 * flushed. On NBD_OPT_EXPORT_NAME or a successful NBD_OPT_GO the pipeline switches to transmission:
 * the request decoder is added behind this phase's decoder, which is then removed so that any
 * bytes the client already sent pass on to it.
 */
public final class NbdHandshakeHandler extends SimpleChannelInboundHandler<NbdHandshake> {
    private static final Logger log = LoggerFactory.getLogger(NbdHandshakeHandler.class);
    public static final String DECODER = "nbd-handshake-decoder";

    private final NbdServerContext server;
    // TLS: STARTTLS accepted, handshake running (anything that arrives meanwhile was sent in plaintext
    // after STARTTLS: an injection, dropped); TLS up; who the client proved to be
    private boolean tlsPending;
    private boolean tlsActive;
    private String identity;
    private boolean noZeroes;
    private boolean structured;
    private boolean baseAllocation;
    private String metaContextExport;

    public NbdHandshakeHandler(NbdServerContext server) {
        this.server = server;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        ByteBuf greeting = ctx.alloc().buffer(18);
        NbdHandshake.encodeGreeting(greeting, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
        ctx.writeAndFlush(greeting);
        ctx.fireChannelActive();
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, NbdHandshake msg) {
        if (tlsPending) {
            log.warn("{}: data sent in plaintext after STARTTLS: dropped", ctx.channel().remoteAddress());
            return;
        }
        if (msg instanceof NbdHandshake.ClientFlags f) {
            if ((f.flags() & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) != 0) {
                protocolError(ctx, "unknown client flags 0x" + Integer.toHexString(f.flags()));
                return;
            }
            noZeroes = (f.flags() & NBD_FLAG_C_NO_ZEROES) != 0;
        } else if (msg instanceof NbdHandshake.BadMagic b) {
            protocolError(ctx, "bad option magic 0x" + Long.toHexString(b.magic()));
        } else if (msg instanceof NbdHandshake.OversizedOption o) {
            log.info("{}: {} with {} bytes of data refused (limit {})", ctx.channel().remoteAddress(),
                    optionName(o.option()), o.length(), MAX_OPTION_LENGTH);
            reply(ctx, NbdOptionReply.error(o.option(), NBD_REP_ERR_TOO_BIG, "option data too long"));
        } else if (msg instanceof NbdHandshake.Option o) {
            option(ctx, o);
        }
    }

    /** Before TLS with {@code --tls require}, nothing but STARTTLS and ABORT; nothing about an export is told. */
    private boolean tlsRequired() {
        return server.tls().mode() == io.bridgefs.server.tls.TlsMode.REQUIRE && !tlsActive;
    }

    private void option(ChannelHandlerContext ctx, NbdHandshake.Option o) {
        int opt = o.option();
        if (tlsRequired() && opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT) {
            if (opt == NBD_OPT_EXPORT_NAME) {
                log.info("{}: NBD_OPT_EXPORT_NAME without TLS, which this server requires: disconnecting", ctx.channel().remoteAddress());
                ctx.close();
                return;
            }
            refusedWithoutTls(ctx, opt);
            reply(ctx, NbdOptionReply.error(opt, NBD_REP_ERR_TLS_REQD, "TLS is required: use NBD_OPT_STARTTLS first"));
            return;
        }
        switch (opt) {
            case NBD_OPT_EXPORT_NAME -> exportName(ctx, o.data());
            case NBD_OPT_ABORT -> {
                ByteBuf b = ctx.alloc().buffer();
                NbdOptionReply.ack(opt).encode(b);
                ctx.writeAndFlush(b).addListener(ChannelFutureListener.CLOSE);
            }
            case NBD_OPT_LIST -> {
                if (o.data().length != 0) {
                    reply(ctx, invalid(ctx, opt, "NBD_OPT_LIST takes no data"));
                    return;
                }
                List<NbdOptionReply> rs = new ArrayList<>();
                for (NbdExport e : server.exports().all()) {
                    if (e.tlsOnly() && !tlsActive) continue;          // not even named without TLS
                    if (!io.bridgefs.server.config.Cidr.admits(e.hosts(), ctx.channel().remoteAddress())) continue;
                    if (!e.allows(identity) && (tlsActive || !e.users().isEmpty())) continue;
                    rs.add(NbdOptionReply.server(opt, e.name(), e.description()));
                }
                rs.add(NbdOptionReply.ack(opt));
                reply(ctx, rs.toArray(NbdOptionReply[]::new));
            }
            case NBD_OPT_STARTTLS -> startTls(ctx, o.data());
            case NBD_OPT_INFO, NBD_OPT_GO -> infoOrGo(ctx, opt, o.data());
            case NBD_OPT_STRUCTURED_REPLY -> {
                if (o.data().length != 0) {
                    reply(ctx, invalid(ctx, opt, "NBD_OPT_STRUCTURED_REPLY takes no data"));
                    return;
                }
                structured = true;
                reply(ctx, NbdOptionReply.ack(opt));
            }
            case NBD_OPT_LIST_META_CONTEXT, NBD_OPT_SET_META_CONTEXT -> metaContext(ctx, opt, o.data());
            default -> reply(ctx, NbdOptionReply.error(opt, NBD_REP_ERR_UNSUP, "option " + opt + " is not supported"));
        }
    }

    private void exportName(ChannelHandlerContext ctx, byte[] data) {
        String name;
        try {
            name = NbdOptionData.utf8(ByteBuffer.wrap(data));
        } catch (NbdOptionData.Malformed e) {
            protocolError(ctx, "NBD_OPT_EXPORT_NAME: " + e.getMessage());
            return;
        }
        NbdExport e = visible(ctx, server.exports().find(name));
        if (e == null) {
            log.info("{}: NBD_OPT_EXPORT_NAME for unknown export '{}': disconnecting", ctx.channel().remoteAddress(), name);
            ctx.close();
            return;
        }
        String refusal = refusal(e);
        if (refusal != null) {
            log.info("{}: NBD_OPT_EXPORT_NAME '{}' refused: {}: disconnecting", ctx.channel().remoteAddress(), name, refusal);
            ctx.close();
            return;
        }
        ByteBuf b = ctx.alloc().buffer(134);
        NbdHandshake.encodeExportNameReply(b, e.size(), e.transmissionFlags(structured), noZeroes);
        ctx.writeAndFlush(b);
        enterTransmission(ctx, e);
    }

    private void infoOrGo(ChannelHandlerContext ctx, int opt, byte[] data) {
        NbdOptionData.InfoRequest req;
        try {
            req = NbdOptionData.parseInfo(data);
        } catch (NbdOptionData.Malformed m) {
            reply(ctx, invalid(ctx, opt, m.getMessage()));
            return;
        }
        NbdExport e = visible(ctx, server.exports().find(req.exportName()));
        if (e == null) {
            reply(ctx, NbdOptionReply.error(opt, NBD_REP_ERR_UNKNOWN, "no export named '" + req.exportName() + "'"));
            return;
        }
        if (e.tlsOnly() && !tlsActive) {
            refusedWithoutTls(ctx, opt);
            reply(ctx, NbdOptionReply.error(opt, NBD_REP_ERR_TLS_REQD, "export '" + e.name() + "' is served over TLS only"));
            return;
        }
        if (!e.allows(identity)) {
            log.info("{}: {} '{}' refused to {}", ctx.channel().remoteAddress(), optionName(opt), e.name(),
                    identity == null ? "an unauthenticated client" : "'" + identity + "'");
            reply(ctx, NbdOptionReply.error(opt, NBD_REP_ERR_POLICY, "not permitted"));
            return;
        }
        List<NbdOptionReply> rs = new ArrayList<>();
        rs.add(NbdOptionReply.infoExport(opt, e.size(), e.transmissionFlags(structured)));
        boolean sentBlockSize = false;
        for (int info : req.infos()) {
            switch (info) {
                case NBD_INFO_NAME -> rs.add(NbdOptionReply.infoString(opt, NBD_INFO_NAME, e.name()));
                case NBD_INFO_DESCRIPTION -> {
                    if (e.description() != null) rs.add(NbdOptionReply.infoString(opt, NBD_INFO_DESCRIPTION, e.description()));
                }
                case NBD_INFO_BLOCK_SIZE -> sentBlockSize = true;
                default -> { }   // unknown info requests are ignored, as the spec says
            }
        }
        // Sent even when not requested: the spec allows it, and a minimum of 1 constrains nobody.
        rs.add(NbdOptionReply.infoBlockSize(opt, 1, NbdExport.PREFERRED_BLOCK, NbdExport.MAX_PAYLOAD));
        rs.add(NbdOptionReply.ack(opt));
        reply(ctx, rs.toArray(NbdOptionReply[]::new));
        if (opt == NBD_OPT_GO) {
            if (metaContextExport != null && !metaContextExport.equals(req.exportName())) baseAllocation = false;
            enterTransmission(ctx, e);
        }
        if (sentBlockSize) log.trace("block size requested");
    }

    /** {@code e}, or null if it is not served to this peer (hosts=): such a peer is told no such export exists. */
    private NbdExport visible(ChannelHandlerContext ctx, NbdExport e) {
        if (e == null || io.bridgefs.server.config.Cidr.admits(e.hosts(), ctx.channel().remoteAddress())) return e;
        log.info("{}: export '{}' is not served to this host (hosts=)", ctx.channel().remoteAddress(), e.name());
        return null;
    }

    /** Why a client may not use export {@code e} now (tls-only without TLS, or not one of its users), or null. */
    private String refusal(NbdExport e) {
        if (e.tlsOnly() && !tlsActive) return "TLS only";
        if (!e.allows(identity)) return identity == null ? "no authenticated user" : "'" + identity + "' is not one of its users";
        return null;
    }

    private boolean complainedTls;

    private void refusedWithoutTls(ChannelHandlerContext ctx, int opt) {
        if (complainedTls) return;
        complainedTls = true;
        log.info("{}: {} refused without TLS (NBD_REP_ERR_TLS_REQD)", ctx.channel().remoteAddress(), optionName(opt));
    }

    /**
     * NBD_OPT_STARTTLS: acknowledged in plaintext, then everything is TLS. Every negotiated state is
     * forgotten (structured replies, meta contexts), and bytes already buffered were sent in plaintext
     * after the option: dropped, never read as if they came over TLS.
     */
    private void startTls(ChannelHandlerContext ctx, byte[] data) {
        int opt = NBD_OPT_STARTTLS;
        if (!server.tls().enabled()) {
            reply(ctx, NbdOptionReply.error(opt, NBD_REP_ERR_UNSUP, "TLS is not configured on this server"));
            return;
        }
        if (data.length != 0) {
            reply(ctx, invalid(ctx, opt, "NBD_OPT_STARTTLS takes no data"));
            return;
        }
        if (tlsActive) {
            reply(ctx, invalid(ctx, opt, "TLS is already in use"));
            return;
        }
        reply(ctx, NbdOptionReply.ack(opt));
        structured = false;
        baseAllocation = false;
        metaContextExport = null;
        tlsPending = true;
        int dropped = ((io.bridgefs.protocol.nbd.NbdHandshakeDecoder) ctx.pipeline().get(DECODER)).discardBuffered();
        if (dropped > 0) log.warn("{}: {} bytes sent in plaintext after STARTTLS: dropped", ctx.channel().remoteAddress(), dropped);
        ctx.pipeline().addFirst(io.bridgefs.server.tls.TlsHandler.NAME, new io.bridgefs.server.tls.TlsHandler(server.tls()));
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof io.bridgefs.server.tls.TlsHandler.Established e) {
            tlsPending = false;
            tlsActive = true;
            identity = e.identity();
            return;
        }
        ctx.fireUserEventTriggered(evt);
    }

    private void metaContext(ChannelHandlerContext ctx, int opt, byte[] data) {
        if (!structured) {
            reply(ctx, invalid(ctx, opt, "structured replies must be negotiated first"));
            return;
        }
        NbdOptionData.MetaContextRequest req;
        try {
            req = NbdOptionData.parseMetaContext(data);
        } catch (NbdOptionData.Malformed m) {
            reply(ctx, invalid(ctx, opt, m.getMessage()));
            return;
        }
        if (server.exports().find(req.exportName()) == null) {
            reply(ctx, NbdOptionReply.error(opt, NBD_REP_ERR_UNKNOWN, "no export named '" + req.exportName() + "'"));
            return;
        }
        boolean set = opt == NBD_OPT_SET_META_CONTEXT;
        boolean match = false;
        if (!set && req.queries().isEmpty()) {
            match = true;
        }
        for (String q : req.queries()) {
            if (q.equals(BASE_ALLOCATION) || (!set && q.equals("base:"))) match = true;
        }
        List<NbdOptionReply> rs = new ArrayList<>();
        if (match) rs.add(NbdOptionReply.metaContext(opt, set ? NbdSession.BASE_ALLOCATION_ID : 0, BASE_ALLOCATION));
        rs.add(NbdOptionReply.ack(opt));
        if (set) {
            baseAllocation = match;
            metaContextExport = req.exportName();
        }
        reply(ctx, rs.toArray(NbdOptionReply[]::new));
    }

    private NbdOptionReply invalid(ChannelHandlerContext ctx, int opt, String why) {
        log.info("{}: {} invalid: {}", ctx.channel().remoteAddress(), optionName(opt), why);
        return NbdOptionReply.error(opt, NBD_REP_ERR_INVALID, why);
    }

    private void reply(ChannelHandlerContext ctx, NbdOptionReply... replies) {
        ByteBuf b = ctx.alloc().buffer();
        for (NbdOptionReply r : replies) r.encode(b);
        ctx.writeAndFlush(b);
        // a client that sends options without reading the replies stops being read
        if (!ctx.channel().isWritable()) ctx.channel().config().setAutoRead(false);
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        if (ctx.channel().isWritable()) ctx.channel().config().setAutoRead(true);
        ctx.fireChannelWritabilityChanged();
    }

    private void protocolError(ChannelHandlerContext ctx, String why) {
        log.info("{}: handshake: {}: disconnecting", ctx.channel().remoteAddress(), why);
        ctx.close();
    }

    private void enterTransmission(ChannelHandlerContext ctx, NbdExport export) {
        io.bridgefs.server.net.ConnectionGuard.negotiated(ctx.channel());
        var p = ctx.pipeline();
        NbdSession session = new NbdSession(server, export, structured, baseAllocation);
        NbdRequestDecoder decoder = new NbdRequestDecoder(NbdExport.MAX_PAYLOAD);
        // large write payloads are gathered as a list of received buffers, never re-copied while growing
        decoder.setCumulator(io.netty.handler.codec.ByteToMessageDecoder.COMPOSITE_CUMULATOR);
        p.addAfter(DECODER, "nbd-request-decoder", decoder);
        io.bridgefs.server.net.ReceiveLowWater.install(ctx.channel(), "nbd-request-decoder", decoder);
        p.replace(this, "nbd-session", session);
        session.gate(decoder);          // before the handshake decoder hands over what it has buffered
        p.remove(DECODER);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (cause instanceof java.io.IOException) {
            log.info("{}: handshake failed: {}", ctx.channel().remoteAddress(), cause.toString());
        } else {
            io.bridgefs.server.net.InternalErrors.record();
            log.warn("{}: handshake failed unexpectedly", ctx.channel().remoteAddress(), cause);
        }
        ctx.close();
    }
}
