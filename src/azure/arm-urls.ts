import type { Cloud } from '../config/schema.js';

/** Azure Resource Manager in each cloud (its own module: the sign-in and readback modules both need it). */
export const ARM_URLS: Record<Cloud, string> = {
  AzureCloud: 'https://management.azure.com',
  AzureUSGovernment: 'https://management.usgovcloudapi.net',
  AzureChinaCloud: 'https://management.chinacloudapi.cn',
};
