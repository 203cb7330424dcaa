package local.shim;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import java.util.ArrayList;
import javax.enterprise.context.ApplicationScoped;
import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

/**
 * Stands in for the bean the config-index Quarkus extension generates at build time (that
 * extension's deployment jar is not on Maven Central). With an empty list no property can be
 * changed at run time through the admin API, which the tests do not use.
 */
@ApplicationScoped
public class DynamicPropsProducer {
    @Produces
    @Singleton
    DynamicConfigPropertyList dynamicConfigPropertyList() {
        return new DynamicConfigPropertyList(new ArrayList<>());
    }
}
