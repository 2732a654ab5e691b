package io.bridgefs.server.metrics;

import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import java.nio.charset.StandardCharsets;
import java.util.function.Supplier;

/**
 * Serves GET /metrics (Prometheus text), GET /stats (JSON), GET /dashboard (a live page charting
 * /stats), and operator actions: GET /verify (recount the counters from the cache frames), POST
 * /drop-caches (evict every clean page, like {@code echo 1 > /proc/sys/vm/drop_caches}), POST
 * /reset-latency (the latency timers' quantiles start afresh: they then describe the requests since;
 * counts and sums go on) and POST /exports/NAME/rescan (a bridged export's new snapshot of its tree). The actions change what every
 * client sees or hold the cache lock for a full recount, so they are answered only to a peer on this
 * host (loopback, or a unix socket) and never to a browser's cross-site request (one with an Origin
 * header): 403 otherwise. The read-only pages are served to anyone who can reach the listener.
 */
public final class MetricsHttpHandler extends SimpleChannelInboundHandler<FullHttpRequest> {
    private static final String DASHBOARD = loadDashboard();
    private final Supplier<String> prometheus;
    private final Supplier<String> json;
    private final Supplier<String> verify;
    private final java.util.Map<String, Supplier<String>> posts;
    private final java.util.function.Function<String, Answer> rescan;

    /** What an action answers: an HTTP status and a line of text. */
    public record Answer(int status, String body) {}

    /** {@code posts}: the actions without a name in their path, by path ({@code /drop-caches}, {@code /reset-latency}). */
    public MetricsHttpHandler(Supplier<String> prometheus, Supplier<String> json, Supplier<String> verify, java.util.Map<String, Supplier<String>> posts,
                              java.util.function.Function<String, Answer> rescan) {
        this.prometheus = prometheus;
        this.json = json;
        this.verify = verify;
        this.posts = java.util.Map.copyOf(posts);
        this.rescan = rescan;
    }

    /** Whether an operator action may be taken for this request: from this host, not from a web page. */
    static boolean mayAct(ChannelHandlerContext ctx, FullHttpRequest req) {
        if (req.headers().contains(HttpHeaderNames.ORIGIN)) return false;
        java.net.SocketAddress peer = ctx.channel().remoteAddress();
        return !(peer instanceof java.net.InetSocketAddress a) || a.getAddress() != null && a.getAddress().isLoopbackAddress();
    }

    private boolean isAction(String path) {
        return posts.containsKey(path) || path.equals("/verify") || path.startsWith("/exports/") && path.endsWith("/rescan");
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest req) {
        String path = req.uri().split("\\?", 2)[0];
        FullHttpResponse resp;
        if (isAction(path) && !mayAct(ctx, req)) {
            resp = text(HttpResponseStatus.FORBIDDEN, "operator actions are answered only to this host (loopback or a unix socket), never to a web page\n",
                    "text/plain");
        } else if (path.startsWith("/exports/") && path.endsWith("/rescan") && path.length() > "/exports//rescan".length()) {
            String name = io.netty.handler.codec.http.QueryStringDecoder.decodeComponent(
                    path.substring("/exports/".length(), path.length() - "/rescan".length()));
            if (req.method().equals(HttpMethod.POST)) {
                Answer a = rescan.apply(name);
                resp = text(HttpResponseStatus.valueOf(a.status()), a.body(), "text/plain");
            } else {
                resp = text(HttpResponseStatus.METHOD_NOT_ALLOWED, "POST only\n", "text/plain");
            }
        } else if (posts.containsKey(path)) {
            resp = req.method().equals(HttpMethod.POST)
                    ? text(HttpResponseStatus.OK, posts.get(path).get(), "text/plain")
                    : text(HttpResponseStatus.METHOD_NOT_ALLOWED, "POST only\n", "text/plain");
        } else if (!req.method().equals(HttpMethod.GET)) {
            resp = text(HttpResponseStatus.METHOD_NOT_ALLOWED, "GET only\n", "text/plain");
        } else if (path.equals("/verify")) {
            String problems = verify.get();
            resp = text(problems.isEmpty() ? HttpResponseStatus.OK : HttpResponseStatus.INTERNAL_SERVER_ERROR,
                    problems.isEmpty() ? "ok: the counters agree with a recount from the frames\n" : problems, "text/plain");
        } else if (path.equals("/metrics")) {
            resp = text(HttpResponseStatus.OK, prometheus.get(), "text/plain; version=0.0.4; charset=utf-8");
        } else if (path.equals("/stats")) {
            resp = text(HttpResponseStatus.OK, json.get(), "application/json");
        } else if (path.equals("/dashboard") || path.equals("/dashboard.html")) {
            resp = text(HttpResponseStatus.OK, DASHBOARD, "text/html; charset=utf-8");
        } else if (path.equals("/")) {
            resp = text(HttpResponseStatus.OK, "bridgefs: /metrics (Prometheus), /stats (JSON), /dashboard (live charts), /verify, POST /drop-caches, POST /reset-latency, POST /exports/NAME/rescan\n", "text/plain");
        } else {
            resp = text(HttpResponseStatus.NOT_FOUND, "not found\n", "text/plain");
        }
        boolean keepAlive = HttpUtil.isKeepAlive(req);
        HttpUtil.setKeepAlive(resp, keepAlive);
        var f = ctx.writeAndFlush(resp);
        if (!keepAlive) f.addListener(ChannelFutureListener.CLOSE);
    }

    private static String loadDashboard() {
        try (var in = MetricsHttpHandler.class.getResourceAsStream("dashboard.html")) {
            return in == null ? "dashboard missing from the jar\n" : new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (java.io.IOException e) {
            return "dashboard unreadable: " + e + "\n";
        }
    }

    private static FullHttpResponse text(HttpResponseStatus status, String body, String type) {
        FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status,
                Unpooled.copiedBuffer(body, StandardCharsets.UTF_8));
        r.headers().set(HttpHeaderNames.CONTENT_TYPE, type);
        r.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, r.content().readableBytes());
        return r;
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        ctx.close();
    }
}
