// The Azure edge mock lives in src/demo/ (`demo --azure-mock` ships it); tests, scripts and the sandbox import it here.
export * from '../../src/demo/mock-azure.js';
