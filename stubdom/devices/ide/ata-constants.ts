// ATA/ATAPI task-file registers, status and error bits, commands (T13 ATA/ATAPI-6..8) and the
// SCSI/MMC packet commands and sense codes an ATAPI CD-ROM answers.

// Command block register offsets (from 0x1F0 / 0x170).
export const ATA_REG_DATA = 0;
export const ATA_REG_ERROR = 1; // read
export const ATA_REG_FEATURE = 1; // write
export const ATA_REG_NSECT = 2;
export const ATA_REG_LBAL = 3;
export const ATA_REG_LBAM = 4;
export const ATA_REG_LBAH = 5;
export const ATA_REG_DEVICE = 6;
export const ATA_REG_STATUS = 7; // read
export const ATA_REG_COMMAND = 7; // write

// Status.
export const ATA_BSY = 0x80;
export const ATA_DRDY = 0x40;
export const ATA_DF = 0x20;
export const ATA_DSC = 0x10;
export const ATA_DRQ = 0x08;
export const ATA_CORR = 0x04;
export const ATA_ERR = 0x01;

// Error.
export const ATA_ABRT = 0x04;
export const ATA_IDNF = 0x10;
export const ATA_UNC = 0x40;

// Device register.
export const ATA_DEV_LBA = 0x40;
export const ATA_DEV_DRV = 0x10;

// Device control (0x3F6 / 0x376).
export const ATA_NIEN = 0x02;
export const ATA_SRST = 0x04;
export const ATA_HOB = 0x80;

// Commands.
export const ATA_CMD_NOP = 0x00;
export const ATA_CMD_DEVICE_RESET = 0x08;
export const ATA_CMD_RECALIBRATE = 0x10;
export const ATA_CMD_READ_PIO = 0x20;
export const ATA_CMD_READ_PIO_NORETRY = 0x21;
export const ATA_CMD_READ_PIO_EXT = 0x24;
export const ATA_CMD_READ_DMA_EXT = 0x25;
export const ATA_CMD_READ_NATIVE_MAX_EXT = 0x27;
export const ATA_CMD_READ_MULTI_EXT = 0x29;
export const ATA_CMD_WRITE_PIO = 0x30;
export const ATA_CMD_WRITE_PIO_NORETRY = 0x31;
export const ATA_CMD_WRITE_PIO_EXT = 0x34;
export const ATA_CMD_WRITE_DMA_EXT = 0x35;
export const ATA_CMD_WRITE_MULTI_EXT = 0x39;
export const ATA_CMD_VERIFY = 0x40;
export const ATA_CMD_VERIFY_NORETRY = 0x41;
export const ATA_CMD_VERIFY_EXT = 0x42;
export const ATA_CMD_SEEK = 0x70;
export const ATA_CMD_EDD = 0x90; // EXECUTE DEVICE DIAGNOSTIC
export const ATA_CMD_INIT_DEV_PARAMS = 0x91;
export const ATA_CMD_PACKET = 0xa0;
export const ATA_CMD_ID_ATAPI = 0xa1;
export const ATA_CMD_READ_MULTI = 0xc4;
export const ATA_CMD_WRITE_MULTI = 0xc5;
export const ATA_CMD_SET_MULTI = 0xc6;
export const ATA_CMD_READ_DMA = 0xc8;
export const ATA_CMD_READ_DMA_NORETRY = 0xc9;
export const ATA_CMD_WRITE_DMA = 0xca;
export const ATA_CMD_WRITE_DMA_NORETRY = 0xcb;
export const ATA_CMD_STANDBYNOW1 = 0xe0;
export const ATA_CMD_IDLEIMMEDIATE = 0xe1;
export const ATA_CMD_STANDBY = 0xe2;
export const ATA_CMD_IDLE = 0xe3;
export const ATA_CMD_CHK_POWER = 0xe5;
export const ATA_CMD_SLEEP = 0xe6;
export const ATA_CMD_FLUSH = 0xe7;
export const ATA_CMD_FLUSH_EXT = 0xea;
export const ATA_CMD_ID_ATA = 0xec;
export const ATA_CMD_SET_FEATURES = 0xef;

// SET FEATURES subcommands.
export const SETFEATURES_XFER = 0x03;
export const SETFEATURES_WC_ON = 0x02;
export const SETFEATURES_WC_OFF = 0x82;
export const SETFEATURES_RA_ON = 0xaa;
export const SETFEATURES_RA_OFF = 0x55;
export const SETFEATURES_REVERT_OFF = 0x66;
export const SETFEATURES_REVERT_ON = 0xcc;

// ATAPI interrupt reason (in the sector count register).
export const ATAPI_INT_REASON_COD = 0x01;
export const ATAPI_INT_REASON_IO = 0x02;

// SCSI / MMC packet commands.
export const GPCMD_TEST_UNIT_READY = 0x00;
export const GPCMD_REQUEST_SENSE = 0x03;
export const GPCMD_INQUIRY = 0x12;
export const GPCMD_MODE_SENSE_6 = 0x1a;
export const GPCMD_START_STOP_UNIT = 0x1b;
export const GPCMD_PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1e;
export const GPCMD_READ_CAPACITY = 0x25;
export const GPCMD_READ_10 = 0x28;
export const GPCMD_SEEK = 0x2b;
export const GPCMD_READ_TOC_PMA_ATIP = 0x43;
export const GPCMD_GET_EVENT_STATUS_NOTIFICATION = 0x4a;
export const GPCMD_MODE_SENSE_10 = 0x5a;
export const GPCMD_READ_12 = 0xa8;

// Sense keys and additional sense codes.
export const SENSE_NONE = 0x00;
export const SENSE_NOT_READY = 0x02;
export const SENSE_MEDIUM_ERROR = 0x03;
export const SENSE_ILLEGAL_REQUEST = 0x05;
export const SENSE_UNIT_ATTENTION = 0x06;
export const ASC_INV_COMMAND_OPERATION_CODE = 0x20;
export const ASC_LOGICAL_BLOCK_OOR = 0x21;
export const ASC_INV_FIELD_IN_CMD_PACKET = 0x24;
export const ASC_MEDIUM_MAY_HAVE_CHANGED = 0x28;
export const ASC_SAVING_PARAMETERS_NOT_SUPPORTED = 0x39;
export const ASC_MEDIUM_NOT_PRESENT = 0x3a;
/** With ASCQ 02: MEDIUM REMOVAL PREVENTED (an eject while the guest holds the lock). */
export const ASC_MEDIA_REMOVAL_PREVENTED = 0x53;
/** GET EVENT STATUS NOTIFICATION: the media class, its event codes and media status bits. */
export const GESN_MEDIA = 4;
export const MEC_NO_CHANGE = 0;
export const MEC_EJECT_REQUESTED = 1;
export const MEC_NEW_MEDIA = 2;
export const MEC_MEDIA_REMOVAL = 3;
export const MS_TRAY_OPEN = 1;
export const MS_MEDIA_PRESENT = 2;
export const ASC_UNRECOVERED_READ_ERROR = 0x11;

export const ATA_SECTOR_SIZE = 512;
export const CD_SECTOR_SIZE = 2048;
