// xenstored for dom0: construct a Xenstored, listen() on its socket, introduceDomain() each
// guest's ring, connectLocal() for dom0's own toolstack.
export { Xenstored, type XenstoredOptions, type MapDomainRing, type MappedDomainRing } from './xenstored.js';
export type { DomainRing } from './ring-connection.js';
export { DEFAULT_QUOTAS, type Quotas } from './quota.js';
