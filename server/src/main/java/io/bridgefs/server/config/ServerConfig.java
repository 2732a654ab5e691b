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
        io.bridgefs.server.tls.TlsSettings tls,
        DirtyRatios dirty) {

    /**
     * When write-back starts in the background ({@link io.bridgefs.server.cache.PageCache#AUTO}: a share
     * that follows what write-back is worth) and when writers wait for it, in percent of the cache
     * (the counterparts of the kernel's vm.dirty_background_ratio and vm.dirty_ratio), and how many nice
     * levels below the server the thread that writes back in the background runs ({@code --writeback-nice}),
     * and how much of a file written sequentially is dirty before it is written back behind its writer
     * ({@code --write-behind}; 0: never).
     */
    public record DirtyRatios(int backgroundPercent, int limitPercent, int flusherNice, long writeBehindBytes) {
        public static final DirtyRatios DEFAULT = new DirtyRatios(io.bridgefs.server.cache.PageCache.AUTO, 75);

        public DirtyRatios {
            if ((backgroundPercent < 1 && backgroundPercent != io.bridgefs.server.cache.PageCache.AUTO) || limitPercent > 90 || limitPercent < 1
                    || backgroundPercent > limitPercent) {
                throw new IllegalArgumentException("--dirty-background and --dirty-limit must satisfy 1 <= background <= limit <= 90 (percent of the cache), or background auto");
            }
            if (flusherNice < 0 || flusherNice > 19) throw new IllegalArgumentException("--writeback-nice must be 0..19");
            if (writeBehindBytes != 0 && (writeBehindBytes < io.bridgefs.server.cache.PageCache.PAGE_SIZE || writeBehindBytes > (1L << 40))) {
                throw new IllegalArgumentException("--write-behind must be off or a size from 4k to 1t");
            }
        }

        public DirtyRatios(int backgroundPercent, int limitPercent) {
            this(backgroundPercent, limitPercent, io.bridgefs.server.cache.PageCache.FLUSHER_NICE);
        }

        public DirtyRatios(int backgroundPercent, int limitPercent, int flusherNice) {
            this(backgroundPercent, limitPercent, flusherNice, io.bridgefs.server.cache.PageCache.WRITE_BEHIND);
        }
    }

    public ServerConfig(ListenAddress nbdListen, List<NbdExportSpec> nbdExports, long cacheSize, CacheMode cacheMode,
                        ListenAddress metricsListen, int ioThreads, int writebackSeconds, ListenAddress p9Listen,
                        List<P9ExportSpec> p9Exports, int p9Msize, DedupMode dedup, Limits limits, io.bridgefs.server.tls.TlsSettings tls) {
        this(nbdListen, nbdExports, cacheSize, cacheMode, metricsListen, ioThreads, writebackSeconds, p9Listen, p9Exports,
                p9Msize, dedup, limits, tls, DirtyRatios.DEFAULT);
    }

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
