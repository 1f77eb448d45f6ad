// The Azure control-plane mock lives in src/demo/ (`demo --azure-mock` ships it); tests import it here.
export * from '../../src/demo/mock-azure-control.js';
