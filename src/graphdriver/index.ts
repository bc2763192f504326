export * from './dirsize.js';
export * from './driver.js';
export { generateLinkId, LINK_ID_LENGTH, LINK_ID_RE } from './overlay2/base32.js';
export * from './overlay2/overlay2.js';
