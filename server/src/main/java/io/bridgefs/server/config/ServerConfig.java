package io.bridgefs.server.config;

import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.DedupMode;
import java.util.List;

/** Everything {@code bridgefs serve} needs, after the config file and command line are merged. */
public record ServerConfig(
        ListenAddress nbdListen,
        List<NbdExportSpec> nbdExports,
        long cacheSize,
        CacheMode cacheMode,
        ListenAddress metricsListen,
        int ioThreads,
        int writebackSeconds,
        ListenAddress p9Listen,
        List<P9ExportSpec> p9Exports,
        int p9Msize,
        DedupMode dedup,
        Limits limits,
        io.bridgefs.server.tls.TlsSettings tls) {

    public ServerConfig(ListenAddress nbdListen, List<NbdExportSpec> nbdExports, long cacheSize, CacheMode cacheMode,
                        ListenAddress metricsListen, int ioThreads, int writebackSeconds, ListenAddress p9Listen,
                        List<P9ExportSpec> p9Exports, int p9Msize, DedupMode dedup, Limits limits) {
        this(nbdListen, nbdExports, cacheSize, cacheMode, metricsListen, ioThreads, writebackSeconds, p9Listen, p9Exports,
                p9Msize, dedup, limits, io.bridgefs.server.tls.TlsSettings.OFF);
    }

    public ServerConfig(ListenAddress nbdListen, List<NbdExportSpec> nbdExports, long cacheSize, CacheMode cacheMode,
                        ListenAddress metricsListen, int ioThreads, int writebackSeconds, ListenAddress p9Listen,
                        List<P9ExportSpec> p9Exports, int p9Msize, DedupMode dedup) {
        this(nbdListen, nbdExports, cacheSize, cacheMode, metricsListen, ioThreads, writebackSeconds, p9Listen, p9Exports,
                p9Msize, dedup, Limits.DEFAULT);
    }

    /** A configuration with the NBD path only (tests and embedders). */
    public ServerConfig(ListenAddress nbdListen, List<NbdExportSpec> nbdExports, long cacheSize, CacheMode cacheMode,
                        ListenAddress metricsListen, int ioThreads, int writebackSeconds) {
        this(nbdListen, nbdExports, cacheSize, cacheMode, metricsListen, ioThreads, writebackSeconds,
                ListenAddress.parse("127.0.0.1:0"), List.of(), 1 << 20, DedupMode.SHADOW);
    }
}
