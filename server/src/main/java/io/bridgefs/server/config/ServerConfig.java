package io.bridgefs.server.config;

import io.bridgefs.server.cache.CacheMode;
import java.util.List;

/** Everything {@code bridgefs serve} needs, after the config file and command line are merged. */
public record ServerConfig(
        ListenAddress nbdListen,
        List<NbdExportSpec> nbdExports,
        long cacheSize,
        CacheMode cacheMode,
        ListenAddress metricsListen,
        int ioThreads,
        int writebackSeconds) {}
